"""A start that fails, a test session interrupted while it sets up, and planted symlinks:
none of them may leave processes running or write where they should not.

Each test runs a small stack of its own (own state folder, own ports), never
the session's stack.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from acct2crm.errors import StackError, StartFailed
from devstack import lifecycle, postgres
from devstack.processes import is_alive, read_pid
from tests.support.own_stack import OwnStack, all_gone

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
TEST_HOME = Path(os.environ["ACCT2CRM_HOME"])  # the session's state folder (conftest)


def quiet(_line: str) -> None:
    pass


def _refusal(action: Callable[[], object]) -> StackError | None:
    """The error ``action`` raised, if any (checked after what it must not have touched)."""
    try:
        action()
    except StackError as exc:
        return exc
    return None


@pytest.fixture
def held_port() -> Iterator[socket.socket]:
    """A socket bound (not listening) by the test: a service's bind on that port fails,
    though a probe finds nothing listening there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        yield sock


def test_a_failed_up_stops_what_it_started_and_names_the_service(held_port: socket.socket) -> None:
    own = OwnStack(TEST_HOME / "failed start")
    held_port.bind(("127.0.0.1", own.ports["crm_port"]))
    try:
        done = own.cli("up", "--only", "postgres,crm")

        assert done.returncode != 0
        assert postgres.server_pid(own.paths) is None, "PostgreSQL was left running"
        assert own.open_ports() == []
        assert own.recorded_pids() == {}
        assert list((own.home / "run").glob("*.pid")) == []
        assert "crm failed to start" in done.stderr
        assert "address already in use" in done.stderr.lower()  # the line of its log
        assert "stopped what this `up` had started: postgres" in done.stderr
    finally:
        own.clean_up()


def test_a_failed_up_leaves_services_that_ran_before_it_alone(held_port: socket.socket) -> None:
    own = OwnStack(TEST_HOME / "failed start after")
    try:
        before = lifecycle.up(own.settings, only=["postgres"], echo=quiet)["postgres"]
        held_port.bind(("127.0.0.1", own.ports["crm_port"]))

        with pytest.raises(StartFailed) as failed:
            lifecycle.up(own.settings, only=["postgres", "crm"], echo=quiet)

        assert failed.value.service == "crm" and failed.value.stopped == ()
        assert before is not None and is_alive(before)
        assert read_pid(own.paths.pid_file("postgres")) == before
    finally:
        own.clean_up()


def _default_interrupt() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_a_session_interrupted_during_setup_leaves_no_service_running() -> None:
    home = TEST_HOME / "interrupted session"
    own = OwnStack(home)
    env = dict(own.env)
    env.update(ACCT2CRM_TEST_HOME=str(home),
               ACCT2CRM_TEST_PORT_OFFSET=str(own.ports["pg_port"] - 55432))
    env.pop("ACCT2CRM_KEEP_STACK", None)
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         # any test that needs the stack: the session is interrupted during its setup
         "tests/integration/stack/test_stack.py", "-k", "status_text"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        # a suite started in the background (`cmd &` in a script) ignores Ctrl-C, and so
        # would the child: it gets Ctrl-C back, as a session started at a terminal has it
        preexec_fn=_default_interrupt,
    )
    try:
        # interrupt once PostgreSQL is up and Kafka and the CRM are starting
        run = home / "run"
        deadline = time.monotonic() + 120
        while not all((run / f"{name}.pid").exists() for name in ("postgres", "kafka", "crm")):
            assert child.poll() is None, "the session ended before it was interrupted"
            assert time.monotonic() < deadline, "the session's setup never got that far"
            time.sleep(0.1)
        started = own.recorded_pids()
        assert {"postgres", "kafka", "crm"} <= set(started)

        child.send_signal(signal.SIGINT)
        output = child.communicate(timeout=120)[0].decode(errors="replace")

        assert child.returncode != 0, output
        assert all_gone(started) == [], output
        assert own.open_ports() == [], output
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        own.clean_up()


def test_a_symlink_planted_in_the_cluster_is_refused_and_its_target_untouched(
    tmp_path: Path,
) -> None:
    own = OwnStack(TEST_HOME / "planted link")
    target = tmp_path / "shadow"
    target.write_text("root's secret\n")
    try:
        lifecycle.up(own.settings, only=["postgres"], echo=quiet)
        lifecycle.down(own.settings, echo=quiet)
        hba = postgres.data_dir(own.paths) / "pg_hba.conf"
        hba.unlink()
        hba.symlink_to(target)

        refusal = _refusal(lambda: lifecycle.up(own.settings, only=["postgres"], echo=quiet))

        assert target.read_text() == "root's secret\n"
        assert target.owner() == "root"
        assert isinstance(refusal, StartFailed) and refusal.service == "postgres"
        assert "symlink" in str(refusal)
        assert own.open_ports() == []
    finally:
        own.clean_up()


@pytest.mark.parametrize("where", ["cluster folder", "recorded private folder"])
def test_a_symlinked_cluster_folder_is_refused(tmp_path: Path, where: str) -> None:
    own = OwnStack(TEST_HOME / f"linked {where}")
    target = tmp_path / "elsewhere"
    target.mkdir()
    own.home.mkdir(parents=True, exist_ok=True)
    if where == "cluster folder":
        (own.home / "postgres").symlink_to(target)
    else:
        (tmp_path / "link").symlink_to(target)
        (own.home / "postgres.location").write_text(f"{tmp_path / 'link'}\n")
    try:
        refusal = _refusal(lambda: lifecycle.up(own.settings, only=["postgres"], echo=quiet))

        assert list(target.iterdir()) == []
        assert target.owner() == "root"
        assert isinstance(refusal, StartFailed) and "symlink" in str(refusal)
    finally:
        own.clean_up()


def test_a_link_planted_at_the_old_predictable_cluster_path_is_never_followed() -> None:
    """Before: a home postgres cannot reach put the cluster at /var/tmp/acct2crm-postgres-
    <hash of home>, and root followed whatever was planted there."""
    private = Path(tempfile.mkdtemp(prefix="acct2crm-home-"))  # mode 700: postgres cannot pass
    own = OwnStack(private / "state")
    tag = hashlib.sha256(str(own.home).encode()).hexdigest()[:10]
    predictable = Path("/var/tmp") / f"acct2crm-postgres-{tag}"
    target = Path(tempfile.mkdtemp(prefix="acct2crm-target-"))
    predictable.symlink_to(target)
    try:
        failure = _refusal(lambda: lifecycle.up(own.settings, only=["postgres"], echo=quiet))

        assert list(target.iterdir()) == []
        assert target.owner() == "root"
        assert predictable.is_symlink()
        assert failure is None
        assert postgres.healthy(own.settings, own.paths)
    finally:
        own.clean_up()
        predictable.unlink()
        subprocess.run(["rm", "-rf", "--", str(target), str(private)], check=False)
