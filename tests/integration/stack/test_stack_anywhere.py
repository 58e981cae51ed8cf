"""The local stack starts from wherever the project was cloned, keeps its state private,
and copes with what an earlier run left behind.

Each test runs a small stack of its own (PostgreSQL and the reference CRM, or
PostgreSQL alone: they start in about a second) with its own state folder and
ports, never the session's stack.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from devstack import lifecycle, postgres
from devstack.lifecycle import Echo
from devstack.processes import is_alive
from tests.support.own_stack import OwnStack, all_gone

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
TEST_HOME = Path(os.environ["ACCT2CRM_HOME"])  # the session's state folder (conftest)


def _copy_of_the_project(target: Path) -> None:
    """The project as a fresh clone has it (tracked and new files of this working tree)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
        capture_output=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).write_bytes(source.read_bytes())


@pytest.fixture(scope="module")
def clone_stack() -> Iterator[tuple[Path, OwnStack, subprocess.CompletedProcess[str]]]:
    """PostgreSQL and the CRM started by `acct2crm up` typed inside a clone that sits in a
    mode-700 folder from mktemp, in a folder whose name holds a space."""
    private = Path(tempfile.mkdtemp(prefix="acct2crm-clone-"))
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    clone = private / "my clone"
    _copy_of_the_project(clone)
    own = OwnStack(clone / ".acct2crm", extra_env={"PYTHONPATH": str(clone / "streams")})
    try:
        done = own.cli("up", "--only", "postgres,crm", cwd=clone)
        yield clone, own, done
    finally:
        own.clean_up()
        subprocess.run(["rm", "-rf", "--", str(private)], check=False)


def test_state_secrets_and_crm_database_are_private(
    clone_stack: tuple[Path, OwnStack, subprocess.CompletedProcess[str]],
) -> None:
    _clone, own, done = clone_stack  # runs first: the next test brings this stack down
    assert done.returncode == 0, done.stdout + done.stderr

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.lstat().st_mode)

    home = own.home
    folders = [home, home / "run", home / "logs", home / "crm"]
    files = [
        home / "run" / "postgres.pid", home / "run" / "crm.pid",
        home / "logs" / "postgres.log", home / "logs" / "crm.log",
        home / "crm" / "crm.sqlite3", home / "postgres.location",
    ]
    assert {str(p): mode(p) for p in folders} == {str(p): 0o700 for p in folders}
    assert {str(p): mode(p) for p in files} == {str(p): 0o600 for p in files}
    # the cluster: a private folder of root's (others may only pass) holding the server's own
    private = Path((home / "postgres.location").read_text().strip())
    assert private.lstat().st_uid == 0 and mode(private) == 0o711
    cluster = private / "cluster"
    assert mode(cluster) == 0o700 and cluster.owner() == "postgres"
    assert mode(cluster / "data" / "pg_hba.conf") == 0o600


def test_postgres_and_crm_start_from_a_clone_in_a_private_folder(
    clone_stack: tuple[Path, OwnStack, subprocess.CompletedProcess[str]],
) -> None:
    clone, own, done = clone_stack

    assert done.returncode == 0, done.stdout + done.stderr
    pids = own.recorded_pids()
    assert set(pids) == {"postgres", "crm"}
    with psycopg.connect(own.settings.postgres_conninfo(), connect_timeout=5) as conn:
        assert conn.execute("SELECT count(*) FROM accounting.customer").fetchone() is not None
    assert httpx.get(f"{own.settings.crm_url}/healthz", timeout=5).status_code == 200
    # every service works in its own state folder, never in the folder the command was typed
    assert os.readlink(f"/proc/{pids['crm']}/cwd") == str(own.home / "crm")
    assert not any(os.readlink(f"/proc/{pid}/cwd") == str(clone) for pid in pids.values())

    stopped = own.cli("down", cwd=clone)
    assert stopped.returncode == 0, stopped.stderr
    assert all_gone(pids) == []
    assert own.open_ports() == []


def test_up_waits_for_a_postgres_that_is_still_stopping() -> None:
    own = OwnStack(TEST_HOME / "stop in progress")
    quiet: Echo = lambda _line: None  # noqa: E731
    try:
        first = lifecycle.up(own.settings, only=["postgres"], echo=quiet)["postgres"]
        assert first is not None
        # a session still open keeps a "smart" stop going for as long as it stays open
        session = psycopg.connect(postgres.superuser_conninfo(own.settings, own.paths))
        os.kill(first, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while not postgres.stopping(own.settings, own.paths):
            assert time.monotonic() < deadline, "the server never reported it was stopping"
            time.sleep(0.05)
        threading.Timer(2.0, session.close).start()

        second = lifecycle.up(own.settings, only=["postgres"], echo=quiet)["postgres"]

        assert second is not None and second != first
        assert not is_alive(first) and is_alive(second)
        assert postgres.healthy(own.settings, own.paths)
    finally:
        own.clean_up()


def test_up_takes_over_a_stack_whose_pid_files_were_lost() -> None:
    own = OwnStack(TEST_HOME / "lost pid files")
    quiet: Echo = lambda _line: None  # noqa: E731
    try:
        started = lifecycle.up(own.settings, only=["postgres", "crm"], echo=quiet)
        for pid_file in (own.home / "run").glob("*.pid"):
            pid_file.unlink()  # as after a start interrupted between spawn and record

        again = lifecycle.up(own.settings, only=["postgres", "crm"], echo=quiet)

        assert {name: again[name] for name in ("postgres", "crm")} == {
            name: started[name] for name in ("postgres", "crm")
        }
        assert lifecycle.down(own.settings, echo=quiet) == ["crm", "postgres"]
        assert own.open_ports() == []
    finally:
        own.clean_up()
