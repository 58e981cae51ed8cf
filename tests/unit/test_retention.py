"""Topic retention: what counts as too short, and when status warns."""

from __future__ import annotations

from acct2crm.progress import retention_warning
from acct2crm.topics import keeps_less

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS


def test_unlimited_retention_never_warns() -> None:
    assert retention_warning("acct2crm.commands", 400 * DAY_MS, -1, 0.8) is None


def test_no_warning_below_the_ratio() -> None:
    assert retention_warning("acct2crm.commands", 5 * DAY_MS, WEEK_MS, 0.8) is None


def test_warns_when_the_oldest_unapplied_change_nears_retention() -> None:
    warning = retention_warning("acct2crm.accounting.customer", 6 * DAY_MS, WEEK_MS, 0.8)
    assert warning is not None
    assert "acct2crm.accounting.customer" in warning
    assert "86%" in warning and "1d 0h" in warning  # share used and time left
    assert "topic_retention_ms" in warning


def test_warns_that_changes_may_be_gone_past_retention() -> None:
    warning = retention_warning("acct2crm.commands", 8 * DAY_MS, WEEK_MS, 0.8)
    assert warning is not None and "already have deleted" in warning


def test_a_topic_keeps_less_than_wanted() -> None:
    assert keeps_less(WEEK_MS, -1)
    assert keeps_less(WEEK_MS, 30 * DAY_MS)
    assert not keeps_less(-1, WEEK_MS)
    assert not keeps_less(-1, -1)
    assert not keeps_less(30 * DAY_MS, WEEK_MS)
