"""Stopping and starting the stack's workers for bench phase (e), and watching their group.

(e) times the workers alone: the burst waits on the change topic while no
worker runs, then 1 or 2 workers start together. Worker 1 is ``up``'s service
(its supervisor's pid file ``worker.pid``), workers 2.. are devstack.workers';
each supervisor's state file names the worker process it runs, whose CPU
time the bench reads.
"""

from __future__ import annotations

import time

from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

from acct2crm.errors import StackError
from acct2crm.kafka_security import client_config
from acct2crm.settings import Settings
from acct2crm.topic_partitions import WORKER_GROUP
from devstack import python_services, workers
from devstack.paths import StackPaths
from devstack.processes import read_pid, stop
from devstack.supervisor import read_state

POLL_S = 0.2  # the group's state is read this often: the bench's clock starts on it


def _quiet(_line: str) -> None:
    return None


def running(settings: Settings) -> bool:
    """Worker 1's supervisor runs."""
    return read_pid(StackPaths.of(settings).pid_file("worker")) is not None


def worker_pids(settings: Settings, count: int) -> list[int]:
    """The worker processes (not their supervisors) of workers 1..``count`` that run now."""
    paths = StackPaths.of(settings)
    found = []
    for index in range(1, count + 1):
        state = read_state(paths.run_dir / f"{workers.name(index)}-supervisor.json") or {}
        pid = state.get("child_pid")
        if isinstance(pid, int):
            found.append(pid)
    return found


def service_pids(settings: Settings, names: tuple[str, ...]) -> dict[str, int]:
    """The pids of those of the stack's services ``names`` that run (by their pid files)."""
    paths = StackPaths.of(settings)
    found = {name: read_pid(paths.pid_file(name)) for name in names}
    return {name: pid for name, pid in found.items() if pid is not None}


def stop_all(settings: Settings) -> None:
    """Every worker stopped (extra ones, then worker 1) and the group left empty."""
    workers.stop_extra(settings, echo=_quiet)
    paths = StackPaths.of(settings)
    pid = read_pid(paths.pid_file("worker"))
    if pid is not None and not stop(pid, sig=python_services.STOP_SIGNAL, timeout_s=30.0):
        raise StackError(f"worker: pid {pid} did not stop, even after SIGKILL")
    paths.pid_file("worker").unlink(missing_ok=True)
    wait_members(settings, 0)


def start(settings: Settings, count: int) -> None:
    """Workers 1..``count`` started at once (not waited for)."""
    python_services.start_worker(settings, StackPaths.of(settings))
    for index in range(2, count + 1):
        workers.start_extra(settings, index)


def start_worker_one(settings: Settings) -> None:
    """Worker 1 running and answering its status page, as ``up`` leaves it."""
    if not running(settings):
        python_services.start_worker(settings, StackPaths.of(settings))
    deadline = time.monotonic() + workers.HEALTHY_TIMEOUT_S
    while not python_services.worker_healthy(settings, StackPaths.of(settings)):
        if time.monotonic() > deadline:
            raise StackError("worker did not answer its status page after the bench")
        time.sleep(0.5)


def wait_members(settings: Settings, members: int, timeout_s: float = 180.0) -> float:
    """Wait until the worker group is stable with ``members`` members (empty for 0);
    the wall-clock time (``time.time()``) it was first seen so."""
    admin = AdminClient(client_config(settings))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            [future] = admin.describe_consumer_groups([WORKER_GROUP]).values()
            group = future.result(timeout=10)
            stable = members == 0 or group.state == ConsumerGroupState.STABLE
            if len(group.members) == members and stable:
                return time.time()
        except KafkaException:
            pass
        time.sleep(POLL_S)
    raise StackError(f"(e): the worker group did not settle with {members} member(s)")
