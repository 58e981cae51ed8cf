"""Bench phase (f): one tenant's latency while another tenant's CRM is down.

Two tenants whose databases share one partition (so the same worker and the
same command batches carry both). Tenant B's latency is the time from its
commit to its write in the reference CRM's journal (``/admin/writes``), one
change at a time. It is measured with tenant A healthy and while A's CRM
account answers 503 (``/admin/faults {"account": A, "down": true}``) with A's
changes waiting, rounds interleaved so a change of the machine's load meets
both alike. Target: no measurable difference (the tenant lanes, app/lanes.py).
"""

from __future__ import annotations

import secrets
import statistics
import time

import psycopg

from acct2crm.settings import Settings
from acct2crm.topic_partitions import tenant_partition
from devstack import tenants
from devstack.bench_ratios import _admin, _faults

SAMPLES = 8
ROUNDS = 2
A_WAITING = 3  # A's changes held while its CRM is down


def pair(settings: Settings) -> tuple[str, str]:
    """Two tenant ids whose databases hash to one partition."""
    first = "bench_iso_a"
    home = tenant_partition(settings, f"accounting_{first}")
    for i in range(10_000):
        other = f"bench_iso_b{i}"
        if tenant_partition(settings, f"accounting_{other}") == home:
            return first, other
    raise RuntimeError("(f): no tenant id shares a partition with bench_iso_a")


def _insert(settings: Settings, tenant_id: str, code: str) -> float:
    """One insert in the tenant's database; when it was committed (epoch seconds)."""
    own = settings.model_copy(update={"pg_database": f"accounting_{tenant_id}"})
    with psycopg.connect(own.postgres_conninfo(), autocommit=True) as conn:
        conn.execute("INSERT INTO accounting.customer (code, name) VALUES (%s, %s)",
                     (code, "Bench isolation"))
        return time.time()


def _write_seq(settings: Settings) -> int:
    with _admin(settings) as admin:
        reply = admin.get("/admin/writes", params={"after": 2**62})
        reply.raise_for_status()
        return int(reply.json()["last_seq"])


def _written_at(settings: Settings, since: int, account: str, codes: set[str],
                timeout_s: float = 120.0) -> dict[str, float]:
    """When each of ``codes`` was written into ``account`` (epoch seconds), once all were."""
    deadline = time.monotonic() + timeout_s
    with _admin(settings) as admin:
        while True:
            reply = admin.get("/admin/writes", params={"after": since})
            reply.raise_for_status()
            found = {str(w["code"]): float(w["at"]) for w in reply.json()["items"]
                     if w["account"] == account and w["code"] in codes}
            if len(found) == len(codes):
                return found
            if time.monotonic() > deadline:
                raise RuntimeError(f"(f): {len(codes) - len(found)} change(s) of {account} "
                                   "never reached its CRM")
            time.sleep(0.05)


def latencies(settings: Settings, tenant_id: str, tag: str, n: int = SAMPLES) -> list[float]:
    """Commit-to-CRM-write seconds of ``n`` changes of the tenant, one after another."""
    out = []
    for i in range(n):
        code = f"BI-{tag}-{i:03}"
        since = _write_seq(settings)
        committed = _insert(settings, tenant_id, code)
        out.append(_written_at(settings, since, tenant_id, {code})[code] - committed)
    return out


def _down_round(settings: Settings, a: str, b: str, tag: str) -> list[float]:
    since = _write_seq(settings)
    codes = {f"BI-{tag}-A{i}" for i in range(A_WAITING)}
    if not _faults(settings, {"account": a, "down": True}):
        raise RuntimeError("(f): the reference CRM refused the fault")
    try:
        for code in sorted(codes):
            _insert(settings, a, code)
        time.sleep(1.0)  # A's commands reach its lane and wait there
        return latencies(settings, b, f"{tag}D")
    finally:
        _faults(settings, {"account": a, "down": False})
        _written_at(settings, since, a, codes)  # A's changes are written once it is back


def phase(settings: Settings) -> list[str]:
    """(f): the lines bench --ratios prints."""
    name = "(f) tenant B latency while tenant A's CRM is down vs A healthy"
    if not _faults(settings, {}):
        return [f"{name}: NOT MEASURED (start the stack with `acct2crm up "
                "--crm-fault-injection`)"]
    a, b = pair(settings)
    for tenant_id in (a, b):
        tenants.add(settings, tenant_id, echo=lambda _line: None)
    tag = secrets.token_hex(3).upper()
    for tenant_id in (a, b):  # both sinks made and seeded before measuring
        since = _write_seq(settings)
        code = f"BI-{tag}-W{tenant_id}"
        _insert(settings, tenant_id, code)
        _written_at(settings, since, tenant_id, {code}, timeout_s=180)
    healthy: list[float] = []
    down: list[float] = []
    for r in range(ROUNDS):  # interleaved
        healthy += latencies(settings, b, f"{tag}H{r}")
        down += _down_round(settings, a, b, f"{tag}{r}")
    h, d = statistics.median(healthy), statistics.median(down)
    return [
        f"{name} (same partition {tenant_partition(settings, f'accounting_{a}')}, "
        f"{len(healthy)} changes each, commit to CRM write): median {d * 1000:,.0f} vs "
        f"{h * 1000:,.0f} ms = {d / h:.2f}x, max {max(down) * 1000:,.0f} vs "
        f"{max(healthy) * 1000:,.0f} ms (target: none measurable)"
    ]
