"""Follow the worker through a range of a topic: how far it has handled, for a progress bar.

Read from the worker's offset ledger (its tail only, see tail_read.py), so
it works from any machine that reaches Kafka and costs a few reads a poll.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping

from confluent_kafka import KafkaException, TopicPartition

from acct2crm.errors import StackError
from acct2crm.kafka_io import consumer
from acct2crm.model.keys import offset_key
from acct2crm.progress import handled_offsets
from acct2crm.settings import Settings
from acct2crm.task_progress import Tracker, track


def follow(
    settings: Settings,
    topic: str,
    start: int | Mapping[int, int],
    end: int | Mapping[int, int],
    tracker: Tracker,
    *,
    idle_timeout_s: float = 60.0,
    poll_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Report offsets ``start..end-1`` handled as they are (partition 0's, or each
    partition's, summed); False if the worker stopped moving."""
    starts = {0: start} if isinstance(start, int) else dict(start)
    ends = {0: end} if isinstance(end, int) else dict(end)
    wanted = sum(ends[p] - o for p, o in starts.items())
    last_done, last_move = -1, time.monotonic()
    while True:
        ledger = handled_offsets(settings)
        done = 0
        for p, first in starts.items():
            handled = ledger.get(offset_key(topic, p))
            done += 0 if handled is None else max(0, min(ends[p], handled + 1) - first)
        tracker.update(completed=done)
        if done >= wanted:
            return True
        now = time.monotonic()
        if done != last_done:
            last_done, last_move = done, now
        elif now - last_move > idle_timeout_s:
            return False
        sleep(poll_s)


def end_offset(settings: Settings, topic: str, partition: int = 0) -> int:
    """The offset the next message of ``topic``'s ``partition`` will get."""
    c = consumer(settings, "acct2crm-cli-follow")
    try:
        return int(c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1])
    except KafkaException as exc:
        raise StackError(f"cannot read offsets of {topic}: {exc}") from exc
    finally:
        c.close()


def follow_with_progress(
    settings: Settings, topic: str, start: int | Mapping[int, int], end: int | Mapping[int, int],
    *, what: str, unit: str,
) -> bool:
    """``follow`` behind a progress bar; says so when the worker stopped moving."""
    starts = {0: start} if isinstance(start, int) else start
    ends = {0: end} if isinstance(end, int) else end
    with track(what, sum(ends[p] - o for p, o in starts.items()), unit) as tracker:
        done = follow(settings, topic, start, end, tracker)
    if not done:
        print(f"{what}: the worker made no progress for a minute; is it running? "
              "(acct2crm status)", file=sys.stderr)
    return done
