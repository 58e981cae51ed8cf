"""Telling a replay from a change of a new source history (a source reset).

Positions (WAL LSNs) only compare within one continuous history of the
accounting database. A new cluster or a restored backup starts another, in
which LSNs go back: a later edit of a row synced before would then look like
a replay of an old change and be dropped. Commit times tell them apart: a
row's changes have rising LSNs and non-decreasing commit times in one
history, so a replay never carries a later commit time than the position it
is compared with, while an edit made after a reset does.
"""

from __future__ import annotations

from acct2crm.rules.change import Position

RESET_REASON = "source reset suspected"
"""How a held-back change's result reason starts; ``positions rebase`` looks for it."""


def looks_like_reset(position: Position, applied: Position | None) -> bool:
    """A change at or below the row's last position, yet committed after it.

    A position without a commit time (a backfill) never signals a reset.
    """
    if applied is None or position.lsn > applied.lsn:
        return False
    if position.ts_ms is None or applied.ts_ms is None:
        return False
    return position.ts_ms > applied.ts_ms
