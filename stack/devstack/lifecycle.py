"""``acct2crm up`` and ``down``: the local stack as plain processes under ``settings.home``.

``up`` starts only what is not already running (a live pid in ``run/`` whose
start time matches), waits for each service to answer its health check, and
fails with one line that names the reason instead of hanging. ``down`` stops,
by pid and in reverse order, exactly the processes ``up`` recorded.
Services whose address is overridden in the settings (``ACCT2CRM_KAFKA_BOOTSTRAP``,
``ACCT2CRM_CONNECT_URL``, ``ACCT2CRM_CRM_URL``) are someone else's: never started
or stopped here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from acct2crm import source_watch
from acct2crm.connect import operations as connectors
from acct2crm.connect.secrets import write_connect_secrets
from acct2crm.errors import ConnectError, ServiceUnhealthy, StackError
from acct2crm.settings import Settings
from acct2crm.topics import ensure_retention, ensure_topics
from devstack import kafka, kafka_connect, postgres, python_services
from devstack.jars import ensure_jars
from devstack.java import java_bin
from devstack.paths import StackPaths
from devstack.processes import (
    is_alive,
    last_error_line,
    port_open,
    read_pid,
    stop,
)

SERVICE_NAMES = ("postgres", "kafka", "connect", "crm", "worker")
STOP_TIMEOUT_S = 30.0

Echo = Callable[[str], None]
Probe = Callable[[Settings, StackPaths], bool]


@dataclass(frozen=True)
class Service:
    """How to prepare, start, probe and stop one service of the stack."""

    name: str
    ports: tuple[int, ...]
    start: Callable[[Settings, StackPaths], int]
    healthy: Probe
    timeout_s: float
    stop_signal: int
    prepare: Callable[[Settings, StackPaths], None] | None = None
    external: bool = False  # configured to run elsewhere: not ours to start or stop


def services(settings: Settings, crm_fault_injection: bool = False) -> dict[str, Service]:
    """The stack's services, in start order."""

    def start_crm(s: Settings, p: StackPaths) -> int:
        return python_services.start_crm(s, p, crm_fault_injection)

    return {
        "postgres": Service(
            "postgres", (settings.pg_port,), postgres.start, postgres.healthy, 90.0,
            postgres.STOP_SIGNAL, postgres.prepare,
        ),
        "kafka": Service(
            "kafka", (settings.kafka_port, settings.kafka_controller_port), kafka.start,
            kafka.healthy, 120.0, kafka.STOP_SIGNAL, kafka.prepare,
            external=settings.kafka_bootstrap_override is not None,
        ),
        "connect": Service(
            "connect", (settings.connect_port,), kafka_connect.start, kafka_connect.healthy,
            180.0, kafka_connect.STOP_SIGNAL, kafka_connect.prepare,
            external=settings.connect_url_override is not None,
        ),
        "crm": Service(
            "crm", (settings.crm_port,), start_crm, python_services.crm_healthy, 60.0,
            python_services.STOP_SIGNAL,
            external=settings.crm_url_override is not None,
        ),
        "worker": Service(
            "worker", (settings.worker_port,), python_services.start_worker,
            python_services.worker_healthy, 90.0, python_services.STOP_SIGNAL,
        ),
    }


class _Starter:
    """One ``up`` run: starts what is missing and remembers what it did."""

    def __init__(self, settings: Settings, paths: StackPaths, echo: Echo) -> None:
        self.settings, self.paths, self.echo = settings, paths, echo
        self.pids: dict[str, int | None] = {}
        self.begun: dict[str, float] = {}

    def launch(self, service: Service) -> None:
        """Start ``service`` unless it already runs; do not wait for it."""
        if service.external:
            self.pids[service.name] = None
            return
        pid = read_pid(self.paths.pid_file(service.name))
        if pid is not None:
            self.pids[service.name] = pid
            return
        for port in service.ports:
            if port_open(port):
                raise StackError(
                    f"{service.name}: port {port} is taken by a program this stack did not "
                    f"start (state folder {self.paths.home}); stop it or choose another port "
                    "with ACCT2CRM_* settings"
                )
        if service.prepare is not None:
            service.prepare(self.settings, self.paths)
        self.begun[service.name] = time.monotonic()
        self.pids[service.name] = service.start(self.settings, self.paths)

    def await_healthy(self, service: Service) -> None:
        """Wait for the health check; a clear error if the process dies or time runs out."""
        pid = self.pids.get(service.name)
        deadline = time.monotonic() + service.timeout_s
        log = self.paths.log_file(service.name)
        while not service.healthy(self.settings, self.paths):
            if pid is not None and not is_alive(pid):
                reason = last_error_line(log) or "no output"
                raise StackError(f"{service.name} exited while starting: {reason} (log: {log})")
            if time.monotonic() > deadline:
                where = f"log: {log}" if not service.external else "configured elsewhere"
                raise ServiceUnhealthy(
                    f"{service.name} not healthy after {service.timeout_s:.0f}s ({where})"
                )
            time.sleep(0.5)
        begun = self.begun.get(service.name)
        if service.external:
            self.echo(f"{service.name}: reachable (external)")
        elif begun is None:
            self.echo(f"{service.name}: already running (pid {pid})")
        else:
            self.echo(
                f"{service.name}: started (pid {pid}), healthy in {time.monotonic() - begun:.1f}s"
            )


def up(
    settings: Settings,
    *,
    crm_fault_injection: bool = False,
    with_worker: bool = True,
    echo: Echo = print,
) -> dict[str, int | None]:
    """Start whatever part of the local stack is not running; the pid of each service."""
    paths = StackPaths.of(settings)
    for folder in (paths.home, paths.run_dir, paths.logs_dir):
        folder.mkdir(parents=True, exist_ok=True)
    java_bin()
    postgres.pg_bin("postgres")
    ensure_jars(paths, echo)
    table = services(settings, crm_fault_injection)
    run = _Starter(settings, paths, echo)

    # JVMs and the CRM warm up in the background while PostgreSQL starts
    run.launch(table["kafka"])
    run.launch(table["crm"])
    run.launch(table["postgres"])
    run.await_healthy(table["postgres"])
    postgres.provision(settings, paths)
    write_connect_secrets(settings)

    run.await_healthy(table["kafka"])
    created = ensure_topics(settings)
    if created:
        echo(f"topics: created {', '.join(created)}")
    for corrected in ensure_retention(settings):
        echo(f"topics: {corrected}")
    run.launch(table["connect"])
    run.await_healthy(table["connect"])
    try:
        for result in connectors.apply(settings):
            echo(f"connector {result.name}: {result.change}, {result.state.state}")
    except ConnectError as exc:
        raise StackError(str(exc)) from exc
    reset = source_watch.baseline(settings)
    if reset:
        echo(f"WARNING {reset}")

    run.await_healthy(table["crm"])

    if not with_worker:
        echo("worker: not started (--no-worker)")
        run.pids.setdefault("worker", read_pid(paths.pid_file("worker")))
    else:
        run.launch(table["worker"])
        run.await_healthy(table["worker"])
    return run.pids


def down(settings: Settings, *, echo: Echo = print) -> list[str]:
    """Stop, in reverse order, every process ``up`` started; the names stopped."""
    paths = StackPaths.of(settings)
    stopped = []
    for name, service in reversed(services(settings).items()):
        pid_file = paths.pid_file(name)
        pid = read_pid(pid_file)
        if pid is None:
            pid_file.unlink(missing_ok=True)
            continue
        if not stop(pid, sig=service.stop_signal, timeout_s=STOP_TIMEOUT_S):
            raise StackError(f"{name}: pid {pid} did not stop, even after SIGKILL")
        pid_file.unlink(missing_ok=True)
        stopped.append(name)
        echo(f"{name}: stopped (pid {pid})")
    if not stopped:
        echo("nothing was running")
    return stopped
