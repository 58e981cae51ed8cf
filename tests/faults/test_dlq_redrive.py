"""Re-driving a dead letter decides it again from the row as it is NOW in accounting.

The row failed (the CRM rejected its tax code), was fixed while the worker
was stopped, and is re-driven before the worker reads the fix: the re-drive
creates the customer with the fixed values (never the stale payload), and
the fix itself, a later change, still goes through (finding nothing to
write). A second re-drive is a replay: it writes nothing. The re-drive is
remembered.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from acct2crm.local_stack import find_local_stack
from acct2crm.settings import Settings
from tests.support.sync import Pipeline, end_offset, unique_tag

pytestmark = pytest.mark.integration


def cli(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "acct2crm.cli", *args],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout


def letters_of(row: int) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in cli("dlq", "list", "--json").splitlines()]
    return [x for x in found if x["accounting_id"] == row]


def test_a_fixed_row_is_redriven_from_its_current_state(stack_settings: Settings) -> None:
    stack = find_local_stack()
    assert stack is not None
    pipe = Pipeline.start(stack_settings)
    tag = unique_tag("D")
    row = pipe.insert(f"{tag}-A", tax_code="12345")  # the CRM answers 422
    [failed] = pipe.results([row], 1)
    assert failed["action"] == "failed" and "tax_code" in failed["reason"]
    [letter] = letters_of(row)
    assert letter["code"] == f"{tag}-A" and letter["redriven"] is None

    commands_end = end_offset(stack_settings, stack_settings.commands_topic)
    shown = cli("dlq", "retry", "--offset", str(letter["offset"]), "--dry-run")
    assert "would be: sent to the sink as an insert (R1)" in shown
    assert end_offset(stack_settings, stack_settings.commands_topic) == commands_end
    assert letters_of(row)[0]["redriven"] is None

    since = pipe.crm_write_seq()
    assert stack.stop_worker(stack_settings)
    try:
        pipe.update(row, tax_code="0123456789", name=f"Fixed {tag}")
        assert "1 re-driven" in cli("dlq", "retry", "--offset", str(letter["offset"]))
    finally:
        stack.start_worker(stack_settings)
    created, fix = pipe.results([row], 3, timeout_s=120)[1:]
    assert created["action"] == "created" and created["crm_id"] is not None
    assert (created["op"], created["reason"][:4]) == ("c", "R1a:")  # decided as the insert it was
    assert fix["action"] == "unchanged" and fix["op"] == "u"
    assert "replay" not in fix["reason"]  # decided again, not dropped as an old change
    [record] = pipe.crm_by_code(f"{tag}-A")
    assert (record["tax_code"], record["name"]) == ("0123456789", f"Fixed {tag}")
    writes = [w for w in pipe.crm_writes_since(since) if w["id"] == created["crm_id"]]
    assert [w["kind"] for w in writes] == ["create"]
    assert letters_of(row)[0]["redriven"] is not None  # remembered

    since = pipe.crm_write_seq()
    cli("dlq", "retry", "--offset", str(letter["offset"]))
    again = pipe.results([row], 4, timeout_s=120)[3]
    assert again["action"] == "unchanged" and "replay" in again["reason"], again
    assert pipe.crm_writes_since(since) == []  # the second re-drive wrote nothing
    pipe.close()
