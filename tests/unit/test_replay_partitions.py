"""Replay over every partition of the change topic (many tenants): where each partition
is re-read from, the dry run reading each one, and the rewind moving each one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from acct2crm import replay
from acct2crm.errors import StackError
from acct2crm.model.keys import offset_key
from acct2crm.records.avro import avro_type
from acct2crm.replay import PartitionRange, starts_from_offset, starts_from_time
from acct2crm.settings import Settings


def test_one_partition_from_offset_is_exactly_the_offset_in_range() -> None:
    ranges = [PartitionRange(0, 0, 50, committed=50)]
    assert starts_from_offset(ranges, 7) == {0: 7}
    assert starts_from_offset(ranges, 50) == {0: 50}
    with pytest.raises(StackError, match=r"outside the topic's range 0\.\.50"):
        starts_from_offset(ranges, 51)


def test_many_partitions_the_offset_applies_to_each_partition() -> None:
    ranges = [
        PartitionRange(0, 0, 40, committed=40),
        PartitionRange(1, 10, 30, committed=30),  # starts later: from its first offset
        PartitionRange(2, 0, 5, committed=5),  # ends before: nothing to re-read, left alone
        PartitionRange(3, 0, 90, committed=12),  # never moved past what the worker handled
    ]
    assert starts_from_offset(ranges, 8) == {0: 8, 1: 10, 3: 8}
    assert starts_from_offset(ranges, 20) == {0: 20, 1: 20, 3: 12}
    with pytest.raises(StackError, match="end of every partition"):
        starts_from_offset(ranges, 200)


def test_partition_option_moves_only_that_partition_by_the_offset_in_its_range() -> None:
    ranges = [PartitionRange(0, 0, 40), PartitionRange(1, 0, 30)]
    assert starts_from_offset(ranges, 25, only=1) == {1: 25}
    with pytest.raises(StackError, match=r"partition 1 range 0\.\.30"):
        starts_from_offset(ranges, 35, only=1)
    with pytest.raises(StackError, match="no partition 4"):
        starts_from_offset(ranges, 0, only=4)


def test_from_time_each_partition_from_its_own_first_offset_that_late() -> None:
    one = [PartitionRange(0, 0, 50, at_time=None)]
    assert starts_from_time(one) == {0: 50}  # nothing that late: the end, as before
    many = [PartitionRange(0, 0, 50, committed=50, at_time=44),
            PartitionRange(1, 0, 20, committed=20, at_time=None),
            PartitionRange(2, 0, 60, committed=60, at_time=3)]
    assert starts_from_time(many) == {0: 44, 2: 3}
    assert starts_from_time(many, only=1) == {1: 20}


def test_describe_keeps_the_one_partition_wording() -> None:
    assert replay.describe({0: 0}) == "offset 0"
    assert replay.describe({2: 5, 0: 1}) == "offsets 1 (partition 0), 5 (partition 2)"


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[TopicPartition] = []

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits += offsets

    def close(self) -> None:
        pass


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int]] = []

    def produce(self, topic: str, *, key: bytes, value: bytes, partition: int) -> None:
        self.sent.append((topic, key, value, partition))


def test_rewind_moves_every_partition_and_writes_each_ledger_entry_to_its_partition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_consumer, fake_producer = FakeConsumer(), FakeProducer()
    monkeypatch.setattr(replay, "worker_group_active", lambda _s: False)
    monkeypatch.setattr(replay, "consumer", lambda _s, _g: fake_consumer)
    monkeypatch.setattr(replay, "producer", lambda _s: fake_producer)
    monkeypatch.setattr(replay, "flush", lambda _p: None)
    settings = Settings(change_partitions=4)
    replay.rewind(settings, {0: 3, 2: 0, 3: 9})
    assert [(tp.topic, tp.partition, tp.offset) for tp in fake_consumer.commits] == [
        (settings.change_topic, 0, 3), (settings.change_topic, 2, 0),
        (settings.change_topic, 3, 9)]
    ledger = avro_type("table_offset")
    assert [(topic, json.loads(key), ledger.decode(value)["offset"], partition)
            for topic, key, value, partition in fake_producer.sent] == [
        (replay.LEDGER_CHANGELOG, offset_key(settings.change_topic, 0), 2, 0),
        (replay.LEDGER_CHANGELOG, offset_key(settings.change_topic, 2), -1, 2),
        (replay.LEDGER_CHANGELOG, offset_key(settings.change_topic, 3), 8, 3),
    ]


def test_rewind_by_one_offset_is_partition_zero_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_consumer, fake_producer = FakeConsumer(), FakeProducer()
    monkeypatch.setattr(replay, "worker_group_active", lambda _s: False)
    monkeypatch.setattr(replay, "consumer", lambda _s, _g: fake_consumer)
    monkeypatch.setattr(replay, "producer", lambda _s: fake_producer)
    monkeypatch.setattr(replay, "flush", lambda _p: None)
    replay.rewind(Settings(), 5)
    assert [(tp.partition, tp.offset) for tp in fake_consumer.commits] == [(0, 5)]
    assert [partition for *_rest, partition in fake_producer.sent] == [0]


def test_dry_run_reads_every_partition_from_its_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
) -> None:
    read: list[tuple[int, int]] = []

    def read_range(_s: Settings, _topic: str, start: int, *, partition: int
                   ) -> Iterator[tuple[int, bytes | None, bytes | None]]:
        read.append((partition, start))
        for offset in range(start, start + 2):
            yield offset, None, None  # tombstones: read, nothing to preview

    monkeypatch.setattr(replay, "read_range", read_range)
    monkeypatch.setattr(replay, "applied_positions", lambda _s: {})

    class Seen:
        completed: list[int] = []  # noqa: RUF012

        def update(self, *, completed: int) -> None:
            self.completed.append(completed)

    seen = Seen()
    previews = list(replay.dry_run(Settings(home=tmp_path), {2: 7, 0: 3}, seen))  # type: ignore[arg-type]
    assert previews == []
    assert read == [(0, 3), (2, 7)]
    assert seen.completed == [1, 2, 3, 4]


def _envelope(op: str, after: Any, lsn: int) -> bytes:
    source = {"lsn": lsn, "txId": 1, "ts_ms": 1, "db": Settings().pg_database}
    return json.dumps({"op": op, "before": None, "after": after, "source": source}).encode()


def test_previewer_decides_each_message_against_the_rows_applied_positions(
    tmp_path: Any,
) -> None:
    from acct2crm.model.keys import row_key
    from tests.support.changes import row

    previewer = replay.Previewer(Settings(home=tmp_path), {row_key("default", 1): 20})
    seen = [
        previewer.preview(0, b'{"id": 1}', _envelope("c", row(1), 20)),  # applied already
        previewer.preview(1, b'{"id": 1}', _envelope("u", row(1), 21)),  # after it
        previewer.preview(2, b'{"id": 2}', _envelope("c", row(2, code="KH002"), 5)),  # new row
        previewer.preview(3, b'{"id": 2}', b"\xffnot json"),
        previewer.preview(4, b'{"id": 2}', None),  # a tombstone: nothing to decide
    ]
    assert [(p.offset, p.op, p.code, p.would.split(":")[0]) if p else None for p in seen] == [
        (0, "c", "KH001", "unchanged"),
        (1, "u", "KH001", "sent to the CRM sink (R1/R2)"),
        (2, "c", "KH002", "sent to the CRM sink (R1/R2)"),
        (3, "?", None, "failed"),
        None,
    ]
