"""A dry run's table ends with one line of totals: hundreds of rows say nothing at a glance."""

from __future__ import annotations

import pytest

from acct2crm.replay import Preview
from acct2crm.rules.change import Action
from acct2crm.rules.decide import Outcome, SyncIntent, classify
from acct2crm.rules.scope import DEFAULT_SCOPE
from acct2crm.views import backfill_table, replay_table
from tests.support.changes import change, row


def test_a_replay_dry_run_ends_with_its_totals(capsys: pytest.CaptureFixture[str]) -> None:
    previews = [
        Preview(1, "c", "A", "unchanged: replay: this row was already synced at lsn 9"),
        Preview(2, "u", "A", "unchanged: replay: this row was already synced at lsn 9"),
        Preview(3, "c", "B", "sent to the CRM sink (R1/R2)"),
        Preview(4, "c", "C", "ignored_out_of_scope: R1/R5: row is not in the sync scope"),
    ]
    replay_table(0, previews)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == ("4 changes: 2 unchanged, 1 to the sink, 1 ignored_out_of_scope; "
                    "nothing was written")


def test_a_backfill_dry_run_ends_with_its_totals(capsys: pytest.CaptureFixture[str]) -> None:
    planned = []
    for n, action in ((1, Action.UNCHANGED), (2, Action.CREATED), (3, Action.CREATED)):
        found = classify(change("r", after=row(n, f"K{n}"), lsn=0), DEFAULT_SCOPE,
                         snapshot_as_insert=True)
        assert isinstance(found, SyncIntent)
        planned.append((found, action, "why"))
    left = [({"id": 4, "code": "V4"}, Outcome(Action.IGNORED_OUT_OF_SCOPE, "vendor", "V4"))]
    backfill_table(planned, left)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == ("4 rows: 2 created, 1 unchanged, 1 ignored_out_of_scope; "
                    "nothing was written")
