"""Endpoints set in the config FILE are the ones used: a worker configured only by a
TOML file (no ACCT2CRM_* variable but ACCT2CRM_CONFIG) writes to a second reference
CRM on another port, not to the stack's.

The stack's own worker is stopped for the test and started again afterwards: the
second worker takes its place in the one consumer group (``acct2crm``) and its
tables. A second worker beside it in that group would just share the partition
with it, and one in a group of its own would re-decide every change and send
commands the stack's worker applies to the stack's CRM a second time.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from acct2crm.settings import Settings
from devstack.paths import StackPaths
from devstack.processes import read_pid, stop
from tests.conftest import StackHandle
from tests.support.sync import Pipeline, unique_tag

pytestmark = pytest.mark.integration

TOKEN = "second-crm-" + secrets.token_hex(8)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _without_acct2crm_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("ACCT2CRM_")}


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args!r} exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} not answering after {timeout_s:.0f}s: {log.read_text()[-2000:]}")


def _end(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def second_crm(tmp_path: Path) -> Iterator[str]:
    """A reference CRM of its own (own port, SQLite file and token), as the stack starts one."""
    port = _free_port()
    log = tmp_path / "crm2.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "refcrm", "--port", str(port),
             "--db", str(tmp_path / "crm2.sqlite3")],
            env={**_without_acct2crm_env(), "ACCT2CRM_CRM_TOKEN": TOKEN,
                 "ACCT2CRM_HOME": str(tmp_path / "crm2-home")},
            stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/healthz", process, log, 30)
        yield url
    finally:
        _end(process)


def _config_file(path: Path, stack: Settings, crm_url: str, home: Path) -> Path:
    """Everything the worker needs, in the file only; the CRM is the second one."""
    lines = {
        "home": str(home),
        "kafka_bootstrap": stack.kafka_bootstrap,
        "connect_url": stack.connect_url,
        "pg_port": stack.pg_port,
        "crm_url": crm_url,
        "crm_token": TOKEN,
        "worker_port": _free_port(),
        "crm_timeout_s": 5.0,
    }
    text = "".join(
        f'{key} = "{value}"\n' if isinstance(value, str) else f"{key} = {value}\n"
        for key, value in lines.items()
    )
    path.write_text(text)
    return path


def _customers(url: str, token: str, code: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{url}/api/customers", params={"code": code},
        headers={"Authorization": f"Bearer {token}"}, timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def test_a_worker_configured_by_file_writes_to_the_crm_the_file_names(
    stack: StackHandle, second_crm: str, tmp_path: Path, crm_http: httpx.Client
) -> None:
    settings = stack.settings
    home = tmp_path / "worker2-home"
    config = _config_file(tmp_path / "acct2crm.toml", settings, second_crm, home)
    env = {**_without_acct2crm_env(), "ACCT2CRM_CONFIG": str(config)}

    # the file is what the worker will read: check it through `config show` first
    shown = subprocess.run(
        [sys.executable, "-m", "acct2crm.cli", "config", "show", "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )
    rows = json.loads(shown.stdout)["settings"]
    for name in ("crm_url", "kafka_bootstrap", "connect_url"):
        assert rows[name]["source"] == "file" and rows[name]["detail"] == str(config)
    assert rows["crm_url"]["value"] == second_crm
    assert TOKEN not in shown.stdout

    worker_log = tmp_path / "worker2.log"
    stack_worker = read_pid(StackPaths.of(settings).pid_file("worker"))
    worker: subprocess.Popen[bytes] | None = None
    pipe = Pipeline.start(settings)
    try:
        if stack_worker is not None:
            assert stop(stack_worker), "the stack's worker did not stop"
        with worker_log.open("wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "acct2crm.cli", "worker"],
                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
            )
        port = json.loads(shown.stdout)["settings"]["worker_port"]["value"]
        _wait_http(f"http://127.0.0.1:{port}/status", worker, worker_log, 120)

        code = unique_tag("CFG")
        row = pipe.insert(code)
        try:
            [result] = pipe.results([row], 1, timeout_s=120)
            assert result["action"] == "created", result
            [record] = _customers(second_crm, TOKEN, code)
            assert record["id"] == result["crm_id"]
            assert record["external_ref"] == f"default:{row}"
            assert crm_http.get("/api/customers", params={"code": code}).json()["items"] == []
        finally:
            with psycopg.connect(settings.postgres_conninfo(), autocommit=True) as conn:
                conn.execute("DELETE FROM accounting.customer WHERE id = %s", (row,))
    finally:
        pipe.close()
        if worker is not None:
            _end(worker)
        stack.up()  # the stack's worker again, healthy, for the tests after this one
