"""Write many result records straight to the results topic, to measure status at volume.

``python -m devstack.result_flood --count 1000000`` writes Avro results (a
failure every 97th, codes repeating every ``--codes``) with a batching
producer, then times ``status``'s progress figures and a ``history`` call:
first with the index catching up, then as the worker leaves it (current).
It writes to a scratch results topic with an index in a scratch folder
(``--real-topic`` to use the configured one), so a stack's own results stay
as they are.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from acct2crm import result_index
from acct2crm.errors import StackError
from acct2crm.kafka_security import client_config
from acct2crm.progress import code_history, sync_progress
from acct2crm.records.avro import result_type
from acct2crm.records.convert import now_ms
from acct2crm.rules.change import Action
from acct2crm.settings import Settings, get_settings

FAILURE_EVERY = 97


def flood_code(tag: str, n: int, codes: int) -> str:
    return f"{tag}-{n % codes:06d}"


def write_results(settings: Settings, count: int, *, tag: str, codes: int = 100_000) -> float:
    """Write ``count`` results; seconds it took."""
    producer = Producer(client_config(settings, **{
        "linger.ms": 50,
        "batch.num.messages": 10_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 500_000,
    }))
    codec = result_type()
    started = time.monotonic()
    applied_at = now_ms()
    for n in range(count):
        failed = n % FAILURE_EVERY == 0
        code = flood_code(tag, n, codes)
        record = {
            "tenant": settings.tenant, "accounting_id": None, "code": code, "op": "c",
            "action": (Action.FAILED if failed else Action.CREATED).value,
            "reason": "flood: synthetic result", "crm_id": None,
            "source": {"lsn": n + 1, "tx_id": None, "ts_ms": applied_at},
            "applied_at": applied_at,
        }
        while True:
            try:
                producer.produce(settings.results_topic, key=code.encode(),
                                 value=codec.encode(record))
                break
            except BufferError:
                producer.poll(0.1)
        if n % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120) > 0:
        raise StackError("Kafka did not take every flood result within 120 s")
    return time.monotonic() - started


@dataclass(frozen=True)
class Timing:
    seconds: float
    messages_read: int


def time_status(settings: Settings) -> Timing:
    stats = result_index.ReadStats()
    started = time.monotonic()
    sync_progress(settings, stats)
    return Timing(time.monotonic() - started, stats.messages)


def time_history(settings: Settings, code: str) -> Timing:
    stats = result_index.ReadStats()
    started = time.monotonic()
    code_history(settings, code, stats)
    return Timing(time.monotonic() - started, stats.messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--codes", type=int, default=100_000)
    parser.add_argument("--real-topic", action="store_true",
                        help="write to the configured results topic (its index: the home's)")
    args = parser.parse_args()
    settings = get_settings()
    if not args.real_topic:
        topic = f"acct2crm-flood-{uuid.uuid4().hex[:8]}"
        admin = AdminClient(client_config(settings))
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        home = Path(tempfile.mkdtemp(prefix="acct2crm-flood-"))
        settings = settings.model_copy(update={"results_topic": topic, "home": home})
        print(f"scratch results topic {topic}, index under {home}")
    tag = f"FLOOD{int(time.time()) % 100_000}"
    took = write_results(settings, args.count, tag=tag, codes=args.codes)
    print(f"wrote {args.count} results in {took:.1f} s ({args.count / took:.0f}/s)")
    first = time_status(settings)
    print(f"status, index catching up: {first.seconds:.2f} s, {first.messages_read} read")
    again = time_status(settings)
    print(f"status, index current:     {again.seconds:.3f} s, {again.messages_read} read")
    history = time_history(settings, flood_code(tag, 7, args.codes))
    print(f"history of one code:       {history.seconds:.3f} s, {history.messages_read} read")


if __name__ == "__main__":
    main()
