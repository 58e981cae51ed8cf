"""Source resets (a new cluster, a restored backup, a lost slot) told apart from replays."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from acct2crm import rebase
from acct2crm.backfill import BACKFILL_POSITION
from acct2crm.rebase import HeldBack, held_back, plan_rebase
from acct2crm.records.avro import dead_letter_type
from acct2crm.records.convert import dead_letter_record
from acct2crm.rules.change import Action, Position
from acct2crm.rules.decide import Outcome, SyncIntent, classify
from acct2crm.rules.resets import RESET_REASON, looks_like_reset
from acct2crm.rules.scope import DEFAULT_SCOPE
from acct2crm.settings import Settings
from acct2crm.source_watch import SlotState, SourceReading, findings
from tests.support.changes import change, row

APPLIED = Position(lsn=5_000, tx_id=900, ts_ms=1_000_000)
NOW = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def test_a_replay_has_the_same_or_an_older_commit_time() -> None:
    assert not looks_like_reset(APPLIED, APPLIED)
    assert not looks_like_reset(Position(lsn=4_000, tx_id=800, ts_ms=999_000), APPLIED)


def test_a_lower_lsn_committed_later_is_a_reset() -> None:
    # a new cluster (or a restored backup) starts its WAL again below the old history
    assert looks_like_reset(Position(lsn=300, tx_id=750, ts_ms=2_000_000), APPLIED)
    assert looks_like_reset(Position(lsn=5_000, tx_id=901, ts_ms=1_000_001), APPLIED)


def test_a_higher_lsn_or_a_position_without_time_is_never_a_reset() -> None:
    assert not looks_like_reset(Position(lsn=6_000, ts_ms=2_000_000), APPLIED)
    assert not looks_like_reset(Position(lsn=300, ts_ms=2_000_000), None)
    assert not looks_like_reset(Position(lsn=300, ts_ms=2_000_000), BACKFILL_POSITION)
    assert not looks_like_reset(Position(lsn=300), APPLIED)


def _after_reset(lsn: int, ts_ms: int):  # type: ignore[no-untyped-def]
    c = change("u", before=row(1, "KH001"), after=row(1, "KH001", name="After the reset"))
    return c.__class__(**{**c.__dict__, "position": Position(lsn=lsn, tx_id=7, ts_ms=ts_ms)})


def test_classify_holds_back_a_change_of_a_new_history_instead_of_dropping_it() -> None:
    outcome = classify(_after_reset(300, 2_000_000), DEFAULT_SCOPE, APPLIED)
    assert isinstance(outcome, Outcome)
    assert outcome.action is Action.FAILED  # a result and a dead letter, never silence
    assert outcome.reason.startswith(RESET_REASON)
    assert "acct2crm positions rebase" in outcome.reason


def test_classify_still_drops_a_true_replay() -> None:
    outcome = classify(_after_reset(4_000, 900_000), DEFAULT_SCOPE, APPLIED)
    assert isinstance(outcome, Outcome)
    assert outcome.action is Action.UNCHANGED
    assert "replay" in outcome.reason


def test_after_a_backfill_every_live_change_goes_through() -> None:
    assert isinstance(classify(_after_reset(1, 5), DEFAULT_SCOPE, BACKFILL_POSITION), SyncIntent)


# ------------------------------------------------------------------ status findings


def reading(**kwargs: Any) -> SourceReading:
    values: dict[str, Any] = {
        "system_identifier": "7001",
        "slot": SlotState("acct2crm_customer", exists=True, active=True, wal_status="reserved"),
        "heartbeat_at": NOW - timedelta(seconds=8),
        "recorded_system_identifier": "7001",
    }
    values.update(kwargs)
    return SourceReading(**values)


def test_a_sound_source_has_nothing_to_say() -> None:
    assert findings(reading(), NOW) == []
    assert findings(reading(recorded_system_identifier=None, heartbeat_at=None), NOW) == []


def test_another_cluster_is_reported_with_the_way_out() -> None:
    [warning] = findings(reading(system_identifier="8123"), NOW)
    assert "source reset" in warning and "8123" in warning and "7001" in warning
    assert "acct2crm positions rebase" in warning


def test_a_missing_or_lost_slot_is_reported() -> None:
    [missing] = findings(reading(slot=SlotState("acct2crm_customer", exists=False)), NOW)
    assert "missing" in missing
    lost = SlotState("acct2crm_customer", exists=True, wal_status="lost")
    [given_up] = findings(reading(slot=lost), NOW)
    assert "max_slot_wal_keep_size" in given_up
    near = SlotState("acct2crm_customer", exists=True, wal_status="unreserved", safe_wal_size=10)
    assert "about to be given up" in findings(reading(slot=near), NOW)[0]


def test_a_silent_connect_is_reported() -> None:
    [silent] = findings(reading(heartbeat_at=NOW - timedelta(minutes=10)), NOW)
    assert "heartbeat" in silent and "600s" in silent


# ------------------------------------------------------------------ rebase plan


def test_rebase_forgets_positions_older_than_the_first_held_back_change() -> None:
    positions: dict[str, dict[str, object]] = {
        "default\x1f1": {"lsn": 9_000, "tx_id": 1, "ts_ms": 1_000},  # old history
        "default\x1f2": {"lsn": 50, "tx_id": 2, "ts_ms": 3_000},  # new history, keep
        "default\x1f3": {"lsn": 0, "tx_id": None, "ts_ms": None},  # a backfill
    }
    held = [HeldBack(change_offset=41, ts_ms=2_000), HeldBack(change_offset=44, ts_ms=2_500)]
    plan = plan_rebase(positions, held, None)
    assert plan.forget == ["default\x1f1"]  # a backfill's position belongs to no history
    assert plan.keep == 2
    assert plan.cutoff_ms == 2_000
    assert plan.replay_from == 41


def test_a_record_in_the_dead_letters_that_is_not_one_is_said_not_skipped_quietly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    letter = dead_letter_record(
        topic="acct2crm.accounting.customer", partition=0, offset=41, key=None, value=b"{}",
        error="SourceReset", reason=f"{RESET_REASON}: held back", change_offset=41,
    )
    dlq = [(0, None, b"not avro"), (1, None, dead_letter_type().encode(letter))]

    def read_range(settings: Settings, topic: str, start: int) -> Iterator[Any]:
        assert topic == settings.dlq_topic and start == 0
        yield from dlq

    monkeypatch.setattr(rebase, "read_range", read_range)
    settings = Settings()
    with caplog.at_level(logging.WARNING, logger="acct2crm.rebase"):
        assert held_back(settings) == [HeldBack(change_offset=41, ts_ms=None)]
    [said] = caplog.messages
    assert said.startswith(f"{settings.dlq_topic} offset 0 is not a dead letter (")
    assert said.endswith("); left out of the rebase")


def test_rebase_without_held_back_changes_forgets_every_position() -> None:
    positions = {"default\x1f1": {"lsn": 9_000, "ts_ms": 1_000}}
    plan = plan_rebase(positions, [], None)
    assert plan.forget == ["default\x1f1"] and plan.replay_from is None
    assert plan_rebase(positions, [], 500).forget == []


def test_a_reader_that_just_attached_has_time_for_its_first_beat() -> None:
    """After `up` of a stack stopped for a while the last beat is old, but Connect's
    walsender started seconds ago: that is a start, not a silent Connect."""
    old_beat = NOW - timedelta(minutes=16)
    attached = SlotState("acct2crm_customer", exists=True, active=True,
                         wal_status="reserved", reading_since=NOW - timedelta(seconds=30))
    assert findings(reading(heartbeat_at=old_beat, slot=attached), NOW) == []
    # it had its time and did not beat: reported, with the beat's own age
    long_ago = replace(attached, reading_since=NOW - timedelta(seconds=130))
    [silent] = findings(reading(heartbeat_at=old_beat, slot=long_ago), NOW)
    assert "960s" in silent
    # a start time is no excuse when nothing reads the slot now
    gone = replace(attached, active=False)
    assert "960s" in findings(reading(heartbeat_at=old_beat, slot=gone), NOW)[0]
    # nor when the role may not see it (NULL without pg_read_all_stats)
    unseen = replace(attached, reading_since=None)
    assert "960s" in findings(reading(heartbeat_at=old_beat, slot=unseen), NOW)[0]
