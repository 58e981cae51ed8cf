"""Driving the real pipeline from tests: accounting writes in, results and CRM state out."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
from confluent_kafka import Consumer, TopicPartition

from acct2crm.kafka_security import client_config
from acct2crm.progress import WORKER_GROUP
from acct2crm.records.avro import dead_letter_type, result_type
from acct2crm.records.convert import result_as_json
from acct2crm.settings import Settings

_counter = itertools.count(1)


def unique_tag(prefix: str = "T") -> str:
    """A code prefix no other test (or earlier run on the same stack) uses."""
    return f"{prefix}{uuid.uuid4().hex[:6].upper()}{next(_counter)}"


def end_offset(settings: Settings, topic: str) -> int:
    c = Consumer(client_config(settings, **{"group.id": "tests-offsets"}))
    try:
        return int(c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
    finally:
        c.close()


def commit_behind(settings: Settings) -> dict[tuple[str, int], int]:
    """Per input partition, how far the worker group's committed offset stands behind the
    partition's end, as Kafka reports the group's lag (and a restart starts from)."""
    c = Consumer(client_config(settings, **{"group.id": WORKER_GROUP}))
    try:
        tps = [TopicPartition(topic, partition)
               for topic in (settings.change_topic, settings.commands_topic)
               for partition in range(settings.change_partitions)]
        behind = {}
        for tp in c.committed(tps, timeout=10):
            low, high = c.get_watermark_offsets(tp, timeout=10)
            behind[(tp.topic, tp.partition)] = high - (tp.offset if tp.offset >= 0 else low)
        return behind
    finally:
        c.close()


def wait_commit_at_end(settings: Settings, timeout_s: float = 30.0) -> None:
    """The running worker's commit follows its ledger to the end of every partition."""
    deadline = time.monotonic() + timeout_s
    while any((behind := commit_behind(settings)).values()):
        assert time.monotonic() < deadline, f"the worker group's commit stands behind: {behind}"
        time.sleep(1)


@dataclass
class Pipeline:
    """One test's view of the running pipeline, from the moment it was made."""

    settings: Settings
    results_start: int = 0
    dlq_start: int = 0
    _seen: list[dict[str, Any]] = field(default_factory=list)
    _dead: list[dict[str, Any]] = field(default_factory=list)
    _consumer: Consumer | None = None
    _dlq_consumer: Consumer | None = None

    @classmethod
    def start(cls, settings: Settings) -> Pipeline:
        return cls(
            settings,
            results_start=end_offset(settings, settings.results_topic),
            dlq_start=end_offset(settings, settings.dlq_topic),
        )

    # accounting side ---------------------------------------------------------
    def sql(self, statement: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement in its own transaction (one commit, one change)."""
        with psycopg.connect(self.settings.postgres_conninfo(), autocommit=True) as conn:
            cur = conn.execute(statement, tuple(params))
            return list(cur.fetchall()) if cur.description else []

    def many(self, statements: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        """Run statements quickly, each its own transaction; the first value each returned."""
        out: list[Any] = []
        with psycopg.connect(self.settings.postgres_conninfo(), autocommit=True) as conn:
            for statement, params in statements:
                cur = conn.execute(statement, params)
                row = cur.fetchone() if cur.description else None
                out.append(row[0] if row else None)
        return out

    def insert(self, code: str, **columns: Any) -> int:
        values = {"code": code, "name": columns.pop("name", f"Customer {code}"), **columns}
        names = ", ".join(values)
        marks = ", ".join(["%s"] * len(values))
        [(row_id,)] = self.sql(
            f"INSERT INTO accounting.customer ({names}) VALUES ({marks}) RETURNING id",
            values.values(),
        )
        return int(row_id)

    def update(self, row_id: int, **columns: Any) -> None:
        sets = ", ".join(f"{name} = %s" for name in columns)
        self.sql(
            f"UPDATE accounting.customer SET {sets}, updated_at = now() WHERE id = %s",
            [*columns.values(), row_id],
        )

    def delete(self, row_id: int) -> None:
        self.sql("DELETE FROM accounting.customer WHERE id = %s", [row_id])

    # results -----------------------------------------------------------------
    def _poll(self) -> None:
        if self._consumer is None:
            self._consumer = Consumer(
                client_config(self.settings) | {"group.id": "tests-results",
                                                 "enable.auto.commit": False}
            )
            self._consumer.assign(
                [TopicPartition(self.settings.results_topic, 0, self.results_start)]
            )
        for message in self._consumer.consume(500, timeout=0.5):
            value = message.value()
            if not message.error() and value is not None:
                self._seen.append(result_as_json(result_type().decode(value)))

    def _about(self, record: dict[str, Any], wanted: set[int]) -> bool:
        """A result about one of ``wanted``'s rows of this pipeline's tenant (row ids of
        other tenants' databases are the same numbers)."""
        return record.get("accounting_id") in wanted and record.get("tenant") in (
            None, self.settings.tenant)

    def results(
        self, ids: Iterable[int], count: int, timeout_s: float = 90.0, *, distinct: bool = False
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` results about rows ``ids`` exist; in the order the
        worker published them (the results topic's offsets), never re-sorted, so
        an order assertion on them checks the worker's own order.

        ``distinct`` counts changes, not results: a change redelivered after a
        crash has a second result.
        """
        wanted = set(ids)
        deadline = time.monotonic() + timeout_s

        def counted(records: list[dict[str, Any]]) -> int:
            if not distinct:
                return len(records)
            return len({(r["accounting_id"], (r.get("source") or {}).get("lsn")) for r in records})

        while True:
            self._poll()
            mine = [r for r in self._seen if self._about(r, wanted)]
            if counted(mine) >= count or time.monotonic() > deadline:
                break
        assert counted(mine) >= count, f"expected {count} results for rows {wanted}, got {mine}"
        return mine

    def results_where(
        self, predicate: Callable[[dict[str, Any]], bool], count: int, timeout_s: float = 60.0
    ) -> list[dict[str, Any]]:
        """Results (any row, or none) that ``predicate`` accepts, once ``count`` exist."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._poll()
            found = [r for r in self._seen if predicate(r)]
            if len(found) >= count or time.monotonic() > deadline:
                return found

    def results_now(self, ids: Iterable[int], quiet_s: float = 2.0) -> list[dict[str, Any]]:
        """Every result about rows ``ids`` published so far, in topic order.

        Reads until the topic has been quiet for ``quiet_s``: meant for when no
        worker runs (nothing more can come).
        """
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < quiet_s:
            seen = len(self._seen)
            self._poll()
            if len(self._seen) != seen:
                quiet_since = time.monotonic()
        wanted = set(ids)
        return [r for r in self._seen if self._about(r, wanted)]

    def dead_letters(self, count: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        if self._dlq_consumer is None:
            self._dlq_consumer = Consumer(
                client_config(self.settings) | {"group.id": "tests-dlq",
                                                 "enable.auto.commit": False}
            )
            self._dlq_consumer.assign([TopicPartition(self.settings.dlq_topic, 0, self.dlq_start)])
        deadline = time.monotonic() + timeout_s
        while len(self._dead) < count and time.monotonic() < deadline:
            for message in self._dlq_consumer.consume(100, timeout=0.5):
                value = message.value()
                if not message.error() and value is not None:
                    self._dead.append(dead_letter_type().decode(value))
        return list(self._dead)

    def close(self) -> None:
        for c in (self._consumer, self._dlq_consumer):
            if c is not None:
                c.close()

    # CRM side ----------------------------------------------------------------
    def crm(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.settings.crm_url,
            headers={"Authorization": f"Bearer {self.settings.crm_token.get_secret_value()}"},
            timeout=10.0,
        )

    def crm_by_code(self, code: str) -> list[dict[str, Any]]:
        with self.crm() as crm:
            reply = crm.get("/api/customers", params={"code": code})
            reply.raise_for_status()
            return list(reply.json()["items"])

    def crm_all(self, prefix: str = "") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page: int | None = 1
        with self.crm() as crm:
            while page is not None:
                body = crm.get("/api/customers", params={"page": page, "page_size": 500}).json()
                items += body["items"]
                page = body.get("next_page")
        return [i for i in items if i["code"].upper().startswith(prefix.upper())]

    def crm_create(self, code: str, **fields: Any) -> dict[str, Any]:
        with self.crm() as crm:
            reply = crm.post("/api/customers", json={"code": code, "name": "Sales", **fields})
            assert reply.status_code == 201, reply.text
            return dict(reply.json())

    def faults(self, **faults: Any) -> None:
        with self.crm() as crm:
            reply = crm.post("/admin/faults", json=faults)
            assert reply.status_code == 200, reply.text

    def crm_stats(self) -> dict[str, int]:
        """The reference CRM's counters (``/admin/stats``): writes, rate_limited, ..."""
        with self.crm() as crm:
            reply = crm.get("/admin/stats")
            reply.raise_for_status()
            body = reply.json()
            return {k: v for k, v in body.items() if type(v) is int}

    def crm_writes(self) -> int:
        return self.crm_stats()["writes"]

    def crm_call_seq(self) -> int:
        """Where the CRM's call journal stands now: pass it to ``crm_calls_since``."""
        with self.crm() as crm:
            reply = crm.get("/admin/calls", params={"after": 2**62})
            reply.raise_for_status()
            return int(reply.json()["last_seq"])

    def crm_calls_since(self, seq: int) -> list[dict[str, Any]]:
        """The ``/api`` calls the CRM got after ``seq``: at, method, target, status,
        retry_after; in the order they arrived."""
        with self.crm() as crm:
            reply = crm.get("/admin/calls", params={"after": seq})
            reply.raise_for_status()
            return list(reply.json()["items"])

    def crm_write_seq(self) -> int:
        """Where the CRM's write journal stands now: pass it to ``crm_writes_since``."""
        with self.crm() as crm:
            reply = crm.get("/admin/writes", params={"after": 2**62})
            reply.raise_for_status()
            return int(reply.json()["last_seq"])

    def crm_writes_since(self, seq: int) -> list[dict[str, Any]]:
        """The writes the CRM accepted after ``seq``, in the order it accepted them."""
        with self.crm() as crm:
            reply = crm.get("/admin/writes", params={"after": seq})
            reply.raise_for_status()
            return list(reply.json()["items"])
