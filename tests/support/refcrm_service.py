"""A reference CRM process of a test's own (``python -m refcrm``), on a free port.

Started as the stack starts it, with its own SQLite file and log; the tests of
the reference CRM, its accounts and batches, and the batched sink use it.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

TOKEN = "refcrm-test-" + secrets.token_hex(8)
NORMAL = {"down": False, "error_rate": 0, "latency_ms": 0, "rate_limit_per_s": 0,
          "lost_reply_rate": 0}


# ------------------------------------------------------------------ service
class Service:
    """One ``python -m refcrm`` process."""

    def __init__(self, db: Path, log: Path, *extra: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ACCT2CRM_CRM_TOKEN": TOKEN}
        self._log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "refcrm", "--port", str(self.port), "--db", str(db),
             *extra],
            env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.log_path = log
        self._wait_healthy()

    def _wait_healthy(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"refcrm exited: {self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"refcrm not healthy in {timeout_s}s: {self.log_path.read_text()}")

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=15)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def running_refcrm(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Service]:
    """A fault-injecting reference CRM for one test module; stopped after it."""
    home = tmp_path_factory.mktemp(name)
    svc = Service(home / "crm" / "crm.sqlite3", home / "refcrm.log", "--fault-injection")
    try:
        yield svc
    finally:
        svc.stop()


def code(prefix: str = "T") -> str:
    """A customer code no other test uses."""
    return f"{prefix}{secrets.token_hex(5).upper()}"
