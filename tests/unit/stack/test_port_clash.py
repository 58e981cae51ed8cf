"""The hint `up` adds when a service could not bind a port the kernel may lend."""

from __future__ import annotations

from pathlib import Path

import pytest

from acct2crm.settings import Settings
from devstack import port_clash
from devstack.port_clash import bind_hint, hint, lendable, parse_ports

KAFKA_LOG = [
    "[2026-12-01 02:00:00] INFO starting (kafka.server.KafkaRaftServer)",
    "[2026-12-01 02:00:01] ERROR Exiting Kafka due to fatal exception "
    "(kafka.Kafka$)",
    "org.apache.kafka.common.KafkaException: Socket server failed to bind to "
    "127.0.0.1:59092: Address already in use.",
]
PORTS = {"kafka_port": 59092, "kafka_controller_port": 59093, "pg_port": 55432}


def test_kernel_port_lists_are_read() -> None:
    assert parse_ports("") == set()
    assert parse_ports("8080,55000-55002\n") == {8080, 55000, 55001, 55002}


def test_only_ports_in_the_range_and_not_reserved_can_be_lent() -> None:
    assert lendable([59092, 59093, 8080], (32768, 60999), {59093}) == [59092]


def test_a_failed_bind_on_a_lendable_port_says_what_to_do() -> None:
    said = hint(KAFKA_LOG, (59092, 59093), PORTS, (32768, 60999), set())
    assert said is not None
    assert "port 59092,59093 is in Linux's ephemeral range (32768-60999)" in said
    assert "ACCT2CRM_KAFKA_CONTROLLER_PORT, ACCT2CRM_KAFKA_PORT" in said
    assert "ACCT2CRM_PG_PORT" not in said  # another service's port
    assert "net.ipv4.ip_local_reserved_ports=59092,59093" in said


@pytest.mark.parametrize(("log", "port_range", "reserved"), [
    (KAFKA_LOG[:2], (32768, 60999), set()),  # another failure: no word on ports
    (KAFKA_LOG, (61000, 65000), set()),  # the ports are below the range
    (KAFKA_LOG, (32768, 60999), {59092, 59093}),  # reserved: the kernel never lends them
])
def test_no_hint_when_the_kernel_cannot_be_the_cause(
    log: list[str], port_range: tuple[int, int], reserved: set[int]
) -> None:
    assert hint(log, (59092, 59093), PORTS, port_range, reserved) is None


def test_the_hint_reads_the_log_and_this_machines_ranges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "range").write_text("32768\t60999\n")
    (tmp_path / "reserved").write_text("59093\n")
    (tmp_path / "kafka.log").write_text("\n".join(KAFKA_LOG) + "\n")
    monkeypatch.setattr(port_clash, "PORT_RANGE", tmp_path / "range")
    monkeypatch.setattr(port_clash, "RESERVED_PORTS", tmp_path / "reserved")
    settings = Settings(kafka_port=59092, kafka_controller_port=59093)
    said = bind_hint(tmp_path / "kafka.log", (59092, 59093), settings)
    assert said is not None and "port 59092 is" in said and "ACCT2CRM_KAFKA_PORT" in said
    # the sysctl keeps what is reserved already: writing it replaces the list
    assert said.endswith("net.ipv4.ip_local_reserved_ports=59093,59092")
    assert bind_hint(tmp_path / "missing.log", (59092,), settings) is None
