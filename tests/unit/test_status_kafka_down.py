"""`status` with a Kafka that does not answer: said once, and not asked again.

Each later read (lags, the recorded source identity, retention, the result
index's tail) would wait out its own timeout: 60 s for `status --check` on a
stopped stack with seven tenants, where a monitor wants its exit code in seconds.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from acct2crm import progress, result_index, source_watch, status_report, tenant_status
from acct2crm.kafka_check import KafkaProblem
from acct2crm.settings import Settings


def free_ports(n: int) -> Iterator[int]:
    """Ports nothing listens on, so every service of these settings refuses at once."""
    held = [socket.socket() for _ in range(n)]
    try:
        for s in held:
            s.bind(("127.0.0.1", 0))
        yield from [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def asks_kafka(*_args: Any, **_kwargs: Any) -> Any:
    raise AssertionError("Kafka was asked again after it did not answer")


def test_a_kafka_that_does_not_answer_is_asked_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = dict(zip(("pg_port", "kafka_port", "connect_port", "crm_port", "worker_port"),
                     free_ports(5), strict=True))
    settings = Settings(home=tmp_path, **ports)
    with closing(result_index.open_index(settings)) as db:  # what was indexed before
        db.execute("INSERT INTO counts (tenant, action, n) VALUES ('default', 'created', 3)")
    asked: list[float] = []

    def kafka_down(_settings: Settings, timeout_s: float = 10.0) -> KafkaProblem:
        asked.append(timeout_s)
        return KafkaProblem("unreachable", "Kafka at 127.0.0.1 did not answer")

    monkeypatch.setattr(status_report, "check_kafka", kafka_down)
    for module, name in [(status_report, "sync_progress"), (status_report, "oldest_unapplied_ms"),
                         (tenant_status, "partition_lags"), (source_watch, "recorded_identity"),
                         (result_index, "catch_up"), (progress, "iter_results")]:
        monkeypatch.setattr(module, name, asks_kafka)

    report = status_report.collect(settings)

    assert asked == [5.0]
    assert report["kafka_error"] == "Kafka at 127.0.0.1 did not answer"
    assert report["lag"] == -1
    assert report["counts"] == {"created": 3}  # the last known word, not none
    assert report["tenants"]["default"]["lag"] == -1
    assert report["tenants"]["default"]["counts"] == {"created": 3}
    assert report["source"]["recorded_system_identifier"] is None
    assert any(p.startswith("kafka: ") for p in report["problems"]), report["problems"]
    # Connect (not running either) said plainly, though it could not say its connector's name
    assert any(p.startswith("connector UNREACHABLE: Kafka Connect at ")
               for p in report["problems"]), report["problems"]
    shown = status_report.as_text(report)
    assert "\nlag unknown (Kafka does not answer)\n" in shown
    assert "\ncounts created=3 (as far as indexed)\n" in shown
