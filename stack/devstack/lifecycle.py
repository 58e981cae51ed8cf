"""``acct2crm up`` and ``down``: the local stack as plain processes under ``settings.home``.

``up`` starts only what is not already running (a live pid in ``run/`` whose
start time matches, or a process of this state folder whose pid file was
lost), waits for each service to answer its health check, and is
all-or-nothing: when a service fails, it stops what this very call started
(by pid), names the service and quotes its log. Services that ran before the
call are left alone; one that was still stopping is waited for, then started.
``down`` stops, by pid and in reverse order, exactly the processes of this
state folder.
Services whose address is configured (``kafka_bootstrap``, ``connect_url``,
``crm_url`` set in the environment or the config file) are someone else's: never
started or stopped here.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import PurePath

from acct2crm import source_watch
from acct2crm.connect import operations as connectors
from acct2crm.connect.secrets import write_connect_secrets
from acct2crm.errors import ConnectError, ServiceUnhealthy, StackError, StartFailed
from acct2crm.settings import Settings
from acct2crm.task_progress import Tracker, track
from acct2crm.topics import ensure_retention, ensure_topics
from devstack import kafka, kafka_connect, postgres, python_services, safe_fs
from devstack.jars import ensure_jars
from devstack.java import java_bin
from devstack.paths import StackPaths
from devstack.port_clash import bind_hint
from devstack.processes import (
    is_alive,
    last_error_line,
    port_open,
    read_pid,
    stop,
    tail,
    wait_gone,
    write_pid,
)

SERVICE_NAMES = ("postgres", "kafka", "connect", "crm", "worker")
# what each service cannot run without; ``up --only`` adds these
NEEDS = {
    "connect": ("postgres", "kafka"),
    "worker": ("postgres", "kafka", "connect", "crm"),
}
STOP_TIMEOUT_S = 30.0

Echo = Callable[[str], None]
Probe = Callable[[Settings, StackPaths], bool]
Finder = Callable[[Settings, StackPaths], "int | None"]


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
    find: Finder | None = None  # a live process of this state folder, pid file or not
    stopping: Probe | None = None  # told to stop and not gone yet


def services(settings: Settings, crm_fault_injection: bool = False) -> dict[str, Service]:
    """The stack's services, in start order."""

    def start_crm(s: Settings, p: StackPaths) -> int:
        return python_services.start_crm(s, p, crm_fault_injection)

    return {
        "postgres": Service(
            "postgres", (settings.pg_port,), postgres.start, postgres.healthy, 90.0,
            postgres.STOP_SIGNAL, postgres.prepare,
            find=lambda _s, p: postgres.server_pid(p), stopping=postgres.stopping,
        ),
        "kafka": Service(
            "kafka", (settings.kafka_port, settings.kafka_controller_port,
                      *([settings.kafka_sasl_ssl_port] if settings.kafka_sasl_ssl_port else [])),
            kafka.start,
            kafka.healthy, 120.0, kafka.STOP_SIGNAL, kafka.prepare,
            external=settings.configured("kafka_bootstrap"), find=kafka.find,
        ),
        "connect": Service(
            "connect", (settings.connect_port, settings.connect_metrics_port),
            kafka_connect.start, kafka_connect.healthy,
            180.0, kafka_connect.STOP_SIGNAL, kafka_connect.prepare,
            external=settings.configured("connect_url"), find=kafka_connect.find,
        ),
        "crm": Service(
            "crm", (settings.crm_port,), start_crm, python_services.crm_healthy, 60.0,
            python_services.STOP_SIGNAL,
            external=settings.configured("crm_url"), find=python_services.find_crm,
        ),
        "worker": Service(
            "worker", (settings.worker_port,), python_services.start_worker,
            python_services.worker_healthy, 90.0, python_services.STOP_SIGNAL,
            find=python_services.find_worker,
        ),
    }


def running_pid(service: Service, settings: Settings, paths: StackPaths) -> int | None:
    """The live process of ``service`` in this state folder: its pid file, or found by
    its working folder (then the pid file is written again)."""
    pid_file = paths.pid_file(service.name)
    pid = read_pid(pid_file)
    if pid is None and service.find is not None:
        pid = service.find(settings, paths)
        if pid is not None:
            write_pid(pid_file, pid)
    return pid


class _Starter:
    """One ``up`` run: starts what is missing and remembers what it did, to undo it."""

    def __init__(self, settings: Settings, paths: StackPaths, echo: Echo,
                 table: dict[str, Service]) -> None:
        self.settings, self.paths, self.echo, self.table = settings, paths, echo, table
        self.pids: dict[str, int | None] = {}
        self.begun: dict[str, float] = {}
        self.started: list[str] = []  # in start order; only these are undone
        self.current = "setup"
        self.tracker: Tracker | None = None  # services healthy so far, for the progress bar

    def launch(self, service: Service) -> None:
        """Start ``service`` unless it already runs; do not wait for it."""
        self.current = service.name
        if service.external:
            self.pids[service.name] = None
            return
        pid = running_pid(service, self.settings, self.paths)
        if pid is not None and service.stopping and service.stopping(self.settings, self.paths):
            self.echo(f"{service.name}: pid {pid} is stopping; waiting for it to exit")
            if not wait_gone(pid, STOP_TIMEOUT_S):
                raise StackError(
                    f"{service.name}: pid {pid} was told to stop and still runs after "
                    f"{STOP_TIMEOUT_S:.0f}s"
                )
            pid = None
        if pid is not None:
            self.pids[service.name] = pid
            return
        self.paths.pid_file(service.name).unlink(missing_ok=True)
        for port in service.ports:
            if port_open(port):
                raise StackError(
                    f"{service.name}: port {port} is taken by a program this stack did not "
                    f"start (state folder {self.paths.home}); stop it or choose another port "
                    "with ACCT2CRM_* settings"
                )
        self.started.append(service.name)
        if service.prepare is not None:
            service.prepare(self.settings, self.paths)
        self.begun[service.name] = time.monotonic()
        self.pids[service.name] = service.start(self.settings, self.paths)

    def await_healthy(self, service: Service) -> None:
        """Wait for the health check; a clear error if the process dies or time runs out.

        A process that ran before this call and exits while we wait (it was being
        stopped) is started again, once.
        """
        self.current = service.name
        pid = self.pids.get(service.name)
        deadline = time.monotonic() + service.timeout_s
        log = self.paths.log_file(service.name)
        while not service.healthy(self.settings, self.paths):
            if pid is not None and not is_alive(pid):
                if service.name not in self.begun:
                    self.echo(f"{service.name}: pid {pid} exited; starting it again")
                    self.launch(service)
                    pid = self.pids.get(service.name)
                    deadline = time.monotonic() + service.timeout_s
                    continue
                reason = last_error_line(log) or "no output"
                clash = bind_hint(log, service.ports, self.settings)
                raise StackError(f"{service.name} exited while starting: {reason} (log: {log})"
                                 + (f"\n{clash}" if clash else ""))
            if time.monotonic() > deadline:
                where = f"log: {log}" if not service.external else "configured elsewhere"
                raise ServiceUnhealthy(
                    f"{service.name} not healthy after {service.timeout_s:.0f}s ({where})"
                )
            if self.tracker is not None:
                waited = service.timeout_s - (deadline - time.monotonic())
                self.tracker.update(note=f"waiting for {service.name} ({waited:.0f}s)")
            time.sleep(0.5)
        if self.tracker is not None:
            self.tracker.advance()
            self.tracker.update(note=f"{service.name} healthy")
        begun = self.begun.get(service.name)
        if service.external:
            self.echo(f"{service.name}: reachable (external)")
        elif begun is None:
            self.echo(f"{service.name}: already running (pid {pid})")
        else:
            self.echo(
                f"{service.name}: started (pid {pid}), healthy in {time.monotonic() - begun:.1f}s"
            )

    def roll_back(self) -> list[str]:
        """Stop, newest first, what this call started; the names stopped."""
        stopped = []
        for name in reversed(self.started):
            service = self.table[name]
            pid_file = self.paths.pid_file(name)
            pid = self.pids.get(name) or read_pid(pid_file)
            if pid is not None and is_alive(pid):
                stop(pid, sig=service.stop_signal, timeout_s=STOP_TIMEOUT_S)
                stopped.append(name)
            if pid is None or not is_alive(pid):
                pid_file.unlink(missing_ok=True)
        return stopped

    def failure(self, exc: Exception, stopped: list[str]) -> StartFailed:
        name = self.current
        lines = [f"{name} failed to start: {exc}"]
        if name in self.begun:
            log = self.paths.log_file(name)
            recent = [line.strip()[:300] for line in tail(log, 3) if line.strip()]
            if recent:
                lines.append(f"last lines of {log}:")
                lines.extend(f"  {line}" for line in recent)
        lines.append(
            "stopped what this `up` had started: " + ", ".join(stopped)
            if stopped else "this `up` left nothing running"
        )
        return StartFailed("\n".join(lines), service=name, stopped=tuple(stopped))


@contextlib.contextmanager
def _no_interrupts() -> Iterator[None]:
    """Let a roll-back finish: a second Ctrl-C must not leave half the stack running."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def wanted_services(only: Collection[str] | None, with_worker: bool = True) -> set[str]:
    """The services to start: ``only`` (all by default) and what they need."""
    chosen = set(SERVICE_NAMES if only is None else only)
    unknown = chosen - set(SERVICE_NAMES)
    if unknown:
        raise StackError(
            f"unknown service(s) {', '.join(sorted(unknown))}: choose from "
            + ", ".join(SERVICE_NAMES)
        )
    if not with_worker:
        chosen.discard("worker")
    for name in list(chosen):
        chosen.update(NEEDS.get(name, ()))
    return chosen


def up(
    settings: Settings,
    *,
    crm_fault_injection: bool = False,
    with_worker: bool = True,
    only: Collection[str] | None = None,
    echo: Echo = print,
) -> dict[str, int | None]:
    """Start whatever part of the local stack is not running; the pid of each service.

    All or nothing: on any failure (or Ctrl-C) the services this call started
    are stopped again and ``StartFailed`` names the one that failed.
    """
    paths = StackPaths.of(settings)
    wanted = wanted_services(only, with_worker)
    safe_fs.ensure_private_root(paths.home, postgres.home_mode(paths))
    for folder in ("run", "logs"):
        safe_fs.ensure_dir(paths.home, PurePath(folder))
    if wanted & {"kafka", "connect"}:
        java_bin()
        ensure_jars(paths, echo)
    if "postgres" in wanted:
        postgres.pg_bin("postgres")
    table = services(settings, crm_fault_injection)
    run = _Starter(settings, paths, echo, table)
    try:
        with track("up: services healthy", len(wanted), "services") as run.tracker:
            _start(run, wanted, with_worker)
    except BaseException as exc:
        with _no_interrupts():
            stopped = run.roll_back()
        if isinstance(exc, Exception):
            raise run.failure(exc, stopped) from exc
        raise
    return run.pids


def _start(run: _Starter, wanted: set[str], with_worker: bool) -> None:
    settings, paths, table, echo = run.settings, run.paths, run.table, run.echo
    # JVMs and the CRM warm up in the background while PostgreSQL starts
    for name in ("kafka", "crm", "postgres"):
        if name in wanted:
            run.launch(table[name])
    if "postgres" in wanted:
        run.await_healthy(table["postgres"])
        postgres.provision(settings, paths)
    if "kafka" in wanted:
        run.await_healthy(table["kafka"])
        created = ensure_topics(settings)
        if created:
            echo(f"topics: created {', '.join(created)}")
        for corrected in ensure_retention(settings):
            echo(f"topics: {corrected}")
    if "connect" in wanted:
        run.current = "connect"
        write_connect_secrets(settings)
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
    if "crm" in wanted:
        run.await_healthy(table["crm"])
    if "worker" in wanted:
        run.launch(table["worker"])
        run.await_healthy(table["worker"])
    else:
        if not with_worker:
            echo("worker: not started (--no-worker)")
        run.pids.setdefault("worker", read_pid(paths.pid_file("worker")))


def down(settings: Settings, *, echo: Echo = print) -> list[str]:
    """Stop, in reverse order, every process of this state folder; the names stopped."""
    paths = StackPaths.of(settings)
    stopped = []
    for name, service in reversed(services(settings).items()):
        pid_file = paths.pid_file(name)
        pid = None if service.external else running_pid(service, settings, paths)
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
