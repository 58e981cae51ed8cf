"""``acct2crm positions rebase``: start the per-row positions over after a source reset.

After a new cluster or a restored backup (source_watch.py), the positions the
worker keeps per row belong to the old history. Rebase, with the worker
stopped:

1. finds the changes held back as a suspected reset (dead letters whose reason
   starts with ``RESET_REASON``): the earliest one's change-topic offset and
   commit time;
2. forgets every position taken before that commit time (``--before`` gives
   the time instead; with neither, every position) by writing tombstones to
   the positions table's changelog, which the worker restores from at start;
   backfill positions (the lowest there is) belong to no history and stay;
3. records the cluster's current system identifier as the new baseline;
4. moves the worker back to the earliest held-back change, so those changes
   are read again and applied.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from acct2crm.backfill import BACKFILL_POSITION
from acct2crm.debezium import decode_change
from acct2crm.errors import DecodeError, StackError
from acct2crm.kafka_io import flush, producer, read_range, read_table
from acct2crm.records.avro import dead_letter_type
from acct2crm.replay import POSITIONS_CHANGELOG, rewind, worker_group_active
from acct2crm.rules.resets import RESET_REASON
from acct2crm.settings import Settings
from acct2crm.source_watch import current_system_identifier, record_identity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldBack:
    change_offset: int
    ts_ms: int | None


@dataclass(frozen=True)
class RebasePlan:
    forget: list[str]  # position table keys
    keep: int
    cutoff_ms: int | None  # positions committed before this are forgotten; None: all
    replay_from: int | None  # change-topic offset to re-read from


def held_back(settings: Settings) -> list[HeldBack]:
    """Changes the worker held back as a suspected source reset, oldest first."""
    codec = dead_letter_type()
    found: list[HeldBack] = []
    for at, _, value in read_range(settings, settings.dlq_topic, 0):
        try:
            letter = codec.decode(value or b"")
        except DecodeError as exc:  # not a dead letter of ours: said, as it may hide one
            log.warning("%s offset %d is not a dead letter (%s); left out of the rebase",
                        settings.dlq_topic, at, exc)
            continue
        if not str(letter.get("reason", "")).startswith(RESET_REASON):
            continue
        offset = letter.get("change_offset")
        if offset is None:
            continue
        ts_ms = None
        try:
            change = decode_change(letter.get("key"), letter.get("value"), tenant=settings.tenant)
            ts_ms = change.position.ts_ms if change is not None else None
        except DecodeError:
            pass
        found.append(HeldBack(int(offset), ts_ms))
    return sorted(found, key=lambda h: h.change_offset)


def plan_rebase(
    positions: Mapping[str, Mapping[str, object]], held: list[HeldBack], before_ms: int | None
) -> RebasePlan:
    """Which positions to forget and where to re-read from; pure."""
    cutoff = before_ms
    if cutoff is None:
        times = [h.ts_ms for h in held if h.ts_ms is not None]
        cutoff = min(times) if times else None
    forget = []
    for key, value in positions.items():
        if value.get("lsn") == BACKFILL_POSITION.lsn:
            continue  # below every history: it never hides a change, old or new
        ts = value.get("ts_ms")
        if cutoff is None or not isinstance(ts, int) or ts < cutoff:
            forget.append(key)
    replay_from = held[0].change_offset if held else None
    return RebasePlan(sorted(forget), len(positions) - len(forget), cutoff, replay_from)


def make_plan(settings: Settings, before_ms: int | None) -> RebasePlan:
    positions = read_table(settings, POSITIONS_CHANGELOG, "position")
    return plan_rebase(positions, held_back(settings), before_ms)


def apply_rebase(settings: Settings, plan: RebasePlan) -> None:
    """Carry the plan out; the worker must be stopped (its table would win otherwise)."""
    if worker_group_active(settings):
        raise StackError("the worker is running: stop it before a rebase (acct2crm down)")
    p = producer(settings)
    for key in plan.forget:
        p.produce(POSITIONS_CHANGELOG, key=json.dumps(key).encode(), value=None)
    flush(p)
    record_identity(settings, current_system_identifier(settings))
    if plan.replay_from is not None:
        rewind(settings, plan.replay_from)
