"""``acct2crm bench --ratios``: how fast the worker replays changes it already applied.

A replay re-reads the change topic; changes already applied write nothing
(no command, no CRM call), so its speed is the change agent's own. The phase
rewinds the worker over the last ``changes`` changes (stopping and starting
it, as ``acct2crm replay`` does) and follows its offset ledger: the rate is
counted from the first offset handled after the restart to the last, so the
worker's start-up is left out. It checks that the commands topic did not grow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import TopicPartition

from acct2crm.commands.common import with_worker_stopped
from acct2crm.kafka_io import consumer
from acct2crm.model.keys import offset_key
from acct2crm.progress import handled_offsets
from acct2crm.replay import rewind
from acct2crm.settings import Settings
from acct2crm.topic_partitions import tenant_partition

POLL_S = 0.05


@dataclass(frozen=True)
class ReplayFigure:
    changes: int  # offsets handled while the clock ran
    seconds: float
    commands_sent: int  # commands the replay produced (0: it wrote nothing)

    @property
    def rate(self) -> float:
        return self.changes / self.seconds if self.seconds > 0 else 0.0


def _range(settings: Settings, topic: str, partition: int) -> tuple[int, int]:
    c = consumer(settings, "acct2crm-bench")
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        return int(low), int(high)
    finally:
        c.close()


def replay_rate(settings: Settings, changes: int, timeout_s: float = 300.0) -> ReplayFigure:
    """Rewind the worker by ``changes`` offsets and time it back to the end."""
    partition = tenant_partition(settings, settings.pg_database)  # the stack's own company
    low, end = _range(settings, settings.change_topic, partition)
    start = max(low, end - changes)
    commands_before = _range(settings, settings.commands_topic, partition)[1]
    key = offset_key(settings.change_topic, partition)
    if not with_worker_stopped(settings, lambda: rewind(settings, {partition: start})):
        raise RuntimeError("no local worker to stop and start: cannot measure a replay")
    first: tuple[int, float] | None = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        handled = handled_offsets(settings).get(key, -1)
        now = time.monotonic()
        if first is None and start <= handled < end - 1:
            first = (handled, now)
        if handled >= end - 1:
            began_at, began = first if first is not None else (start - 1, now)
            commands = _range(settings, settings.commands_topic, partition)[1] - commands_before
            return ReplayFigure(handled - began_at, now - began, commands)
        time.sleep(POLL_S)
    raise RuntimeError(f"the worker did not replay offsets {start}..{end - 1} in {timeout_s:.0f}s")
