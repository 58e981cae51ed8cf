"""``acct2crm bench --memory``: the worker's RSS with many CRM codes in its table.

Runs in a process of its own (``python -m devstack.bench_memory N DIR``): builds
the worker's Faust app and tables as the worker does, on the ``rocksdb://``
store, writes N code entries (in the shape ``CodeCache.remember`` writes)
straight into the code table's store, reads a sample back through the
``CodeCache``, and reports the process's resident memory. It leaves out the
changelog traffic a live worker would also send (the store is what grows with
the number of codes).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import Any

from faust import streams

from acct2crm.app.event_loop import install_event_loop
from acct2crm.app.topology import build_topology
from acct2crm.model.crm import CrmRecord
from acct2crm.settings import Settings
from acct2crm.sink.code_cache import CodeCache


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class _Message:
    partition = 0


class _Event:
    message = _Message()


def fill(n: int, home: Path) -> list[str]:
    settings = Settings(home=home, table_store="rocksdb://")
    loop = install_event_loop(settings.event_loop)  # as the worker does, before the app
    topology = build_topology(settings)
    before = rss_mb()
    table: Any = topology.code_to_customer
    store = table.data
    event = _Event()
    streams._current_event.set(weakref.ref(event))  # type: ignore[arg-type]
    began = time.monotonic()
    cache = CodeCache(store, settings.tenant)
    for i in range(n):
        fields: dict[str, str | None] = {"code": f"K{i:08}", "name": f"Customer {i}"}
        cache.remember(CrmRecord(id=i + 1, fields=fields, external_ref=f"default:{i}"))
    wrote = time.monotonic() - began
    sample = [f"k{i:08}" for i in range(0, n, max(1, n // 1000))]
    assert all(cache.get(key) is not None for key in sample), "a code read back wrong"
    return [
        f"worker tables on rocksdb:// with {n:,} CRM codes: RSS {rss_mb():.0f} MB "
        f"(app built: {before:.0f} MB; written in {wrote:.0f}s; store {type(store).__module__}; "
        f"event loop {loop}) "
        "(target <= 400 MB)"
    ]


def run(n: int = 1_000_000) -> list[str]:
    """Measure in a fresh process, in a temporary folder it removes afterwards."""
    with tempfile.TemporaryDirectory(prefix="acct2crm-memory-") as home:
        done = subprocess.run(
            [sys.executable, "-m", "devstack.bench_memory", str(n), home],
            capture_output=True, text=True, check=False,
            env={k: v for k, v in os.environ.items() if not k.startswith("ACCT2CRM_")},
        )
    if done.returncode != 0:
        return [f"memory bench failed: {done.stderr.strip().splitlines()[-1:]}"]
    return done.stdout.strip().splitlines()


if __name__ == "__main__":
    for line in fill(int(sys.argv[1]), Path(sys.argv[2])):
        print(line)
