"""The operator's field mapping through the real stack: PostgreSQL → Debezium → worker → CRM.

The mapping file is the worker's own (``<home>/mapping.toml``); each test
writes it and removes it again, so the other tests keep the default mapping.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from acct2crm import status_report as report
from acct2crm.settings import Settings
from tests.support.sync import Pipeline, unique_tag

pytestmark = pytest.mark.integration

MAPPING = """
# a CRM whose sales team owns the branch once the customer exists
[[field]]
crm = "code"
column = "code"

[[field]]
crm = "name"
column = "name"
transform = "upper"

[[field]]
crm = "phone"
column = "phone"
transform = "phone_digits"

[[field]]
crm = "contact_name"
constant = "Accounts desk"

[[field]]
crm = "branch_code"
column = "branch_code"
create_only = true
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command line, with the test stack's settings (inherited environment)."""
    return subprocess.run(
        [sys.executable, "-m", "acct2crm.cli", *args],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "COLUMNS": "250"},
    )


def write(path: Path, text: str) -> None:
    """Write the file with a modification time of its own, whatever the clock's resolution."""
    previous = path.stat().st_mtime if path.exists() else 0.0
    path.write_text(text, encoding="utf-8")
    stamp = max(time.time(), previous + 1.0)
    os.utime(path, (stamp, stamp))


@pytest.fixture
def mapping_file(stack_settings: Settings) -> Iterator[Path]:
    path = stack_settings.effective_mapping_file
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, MAPPING)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def only_writes_of(pipe: Pipeline, since: int, code: str) -> list[dict[str, Any]]:
    return [w for w in pipe.crm_writes_since(since) if str(w["code"]).upper() == code.upper()]


def test_a_custom_mapping_sends_constants_and_transforms_and_leaves_sales_fields_alone(
    pipe: Pipeline, mapping_file: Path
) -> None:
    code = unique_tag("M")
    row = pipe.insert(code, name="Công ty An", phone="+84 (24) 111-222", branch_code="HN",
                      tax_code="0101234567")
    [created] = pipe.results([row], 1)
    assert created["action"] == "created"
    [record] = pipe.crm_by_code(code)
    assert record["name"] == "CÔNG TY AN"  # transform upper
    assert record["phone"] == "8424111222"  # transform phone_digits
    assert record["contact_name"] == "Accounts desk"  # a constant
    assert record["branch_code"] == "HN"  # create-only: written on create
    assert record["tax_code"] is None  # not mapped: never sent

    # sales move the customer to their own branch in the CRM
    with pipe.crm() as crm:
        moved = crm.patch(f"/api/customers/{record['id']}", json={"branch_code": "SALES-HN"})
        assert moved.status_code == 200, moved.text

    # accounting edits the name and the branch: the name follows, sales' branch stays
    since = pipe.crm_write_seq()
    pipe.update(row, name="Công ty An Mới", branch_code="DN")
    [_, updated] = pipe.results([row], 2)
    assert updated["action"] == "updated"
    [record] = pipe.crm_by_code(code)
    assert record["name"] == "CÔNG TY AN MỚI"
    assert record["branch_code"] == "SALES-HN"
    [patch] = only_writes_of(pipe, since, code)
    assert "branch_code" not in patch["fields"]

    # accounting edits only the branch (create-only) or an unmapped column: nothing written
    since = pipe.crm_write_seq()
    pipe.update(row, branch_code="HCM")
    assert pipe.results([row], 3)[2]["action"] == "unchanged"  # the sink compared, no write
    pipe.update(row, tax_code="0109999999", is_vendor=True)
    unmapped = pipe.results([row], 4)[3]
    assert unmapped["action"] == "unchanged"
    assert "field mapping" in unmapped["reason"]  # settled before the sink: no CRM call
    assert only_writes_of(pipe, since, code) == []
    assert pipe.crm_by_code(code) == [record]  # updated_at included

    # a last mapped edit: the row's synced position passes the edit settled above, so a
    # later replay of the topic (under whatever mapping is then in force) skips them all
    pipe.update(row, phone="024 999")
    assert pipe.results([row], 5)[4]["action"] == "updated"
    assert pipe.crm_by_code(code)[0]["phone"] == "024999"

    # the preview shows what the CRM would receive for the row now
    shown = cli("mapping", "preview", code.lower())
    assert shown.returncode == 0, shown.stderr
    assert f"accounting row {row}" in shown.stdout
    assert "'CÔNG TY AN MỚI'" in shown.stdout
    assert "'024999'" in shown.stdout
    assert "'Accounts desk'" in shown.stdout
    branch_line = next(line for line in shown.stdout.splitlines() if "branch_code" in line)
    assert "'HCM'" in branch_line and "create only" in branch_line
    assert "tax_code" not in shown.stdout
    assert "out of the sync scope" not in shown.stdout
    vendor = pipe.insert(f"{code}-V", is_customer=False, is_vendor=True)
    assert pipe.results([vendor], 1)[0]["action"] == "ignored_out_of_scope"
    out = cli("mapping", "preview", f"{code}-V")
    assert out.returncode == 0 and "out of the sync scope" in out.stdout, out.stdout
    missing = cli("mapping", "preview", f"{code}-NONE")
    assert missing.returncode == 1 and "no accounting row" in missing.stderr

    listed = cli("mapping", "show")
    assert listed.returncode == 0, listed.stderr
    assert str(mapping_file) in listed.stdout
    assert "contact_name <- constant 'Accounts desk'" in listed.stdout
    assert "branch_code <- column branch_code; create only" in listed.stdout


def test_a_broken_edit_keeps_the_last_good_mapping_and_shows_on_status(
    pipe: Pipeline, mapping_file: Path, stack_settings: Settings
) -> None:
    code = unique_tag("M")
    first = pipe.insert(code, name="Good mapping")
    assert pipe.results([first], 1)[0]["action"] == "created"
    assert pipe.crm_by_code(code)[0]["name"] == "GOOD MAPPING"

    # an edit with two sources for one field: refused, the last good mapping stays
    write(mapping_file, MAPPING + '\n[[field]]\ncrm = "name"\ncolumn = "contact_name"\n')
    second = pipe.insert(f"{code}-2", name="Still upper", phone="09 01")
    assert pipe.results([second], 1)[0]["action"] == "created"
    [record] = pipe.crm_by_code(f"{code}-2")
    assert (record["name"], record["phone"], record["contact_name"]) == (
        "STILL UPPER", "0901", "Accounts desk")

    sync = report.collect(stack_settings)["sync"]
    assert "two sources for CRM field 'name'" in (sync["mapping_error"] or "")
    status = cli("status")
    assert "mapping file error (previous mapping kept)" in status.stdout, status.stdout
    assert "two sources for CRM field 'name'" in status.stdout
    shown = cli("mapping", "show")
    assert shown.returncode == 1 and "two sources" in shown.stderr

    # fixing the file clears the error; removing it brings back the contract's fields
    write(mapping_file, MAPPING)
    third = pipe.insert(f"{code}-3", name="Fixed")
    assert pipe.results([third], 1)[0]["action"] == "created"
    assert report.collect(stack_settings)["sync"]["mapping_error"] is None
    mapping_file.unlink()
    fourth = pipe.insert(f"{code}-4", name="Default again", branch_code="HN")
    assert pipe.results([fourth], 1)[0]["action"] == "created"
    [record] = pipe.crm_by_code(f"{code}-4")
    assert (record["name"], record["contact_name"]) == ("Default again", None)
