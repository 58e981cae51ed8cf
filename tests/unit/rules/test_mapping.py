"""The field mapping: validation, transforms, constants, create-only fields, counted changes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tomllib
import unicodedata
from pathlib import Path
from typing import Any

import fastavro
import pytest

from acct2crm.errors import ConfigError
from acct2crm.mapping_file import MappingWatcher, read_mapping
from acct2crm.mapping_preview import preview
from acct2crm.model.crm import CrmRecord
from acct2crm.package_data import schema_text
from acct2crm.records.avro import command_type
from acct2crm.records.convert import command_record, intent_from_command
from acct2crm.rules.change import MAPPED_FIELDS, UNAVAILABLE, Action, Op
from acct2crm.rules.codes import clean_text, code_key
from acct2crm.rules.decide import (
    Create,
    Outcome,
    Patch,
    SyncIntent,
    classify,
    decide,
)
from acct2crm.rules.mapping import DEFAULT_MAPPING, FieldMapping, parse_mapping
from acct2crm.rules.scope import DEFAULT_SCOPE
from tests.support.changes import change, row

CUSTOM = """
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


def mapping_of(text: str) -> FieldMapping:
    return parse_mapping(tomllib.loads(text))


def intent(c: Any, mapping: FieldMapping) -> SyncIntent:
    result = classify(c, DEFAULT_SCOPE, mapping=mapping)
    assert isinstance(result, SyncIntent), result
    return result


def crm(id_: int, code: str, ref: str | None = None, **fields: str | None) -> CrmRecord:
    base: dict[str, str | None] = {"code": code, "name": f"CUSTOMER {code}", "branch_code": "HQ"}
    base.update(fields)
    return CrmRecord(id=id_, fields=base, external_ref=ref)


# ------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[field]]\ncrm = "code"\ncolumn = "kode"', "unknown column 'kode'"),
        ('[[field]]\ncrm = "code"\ncolumn = "code"\n[[field]]\ncrm = "nickname"\ncolumn = "name"',
         "unknown CRM field 'nickname'"),
        ('[[field]]\ncrm = "code"\ncolumn = "code"\n[[field]]\ncrm = "name"\ncolumn = "name"\n'
         '[[field]]\ncrm = "name"\ncolumn = "contact_name"',
         "two sources for CRM field 'name'"),
        ('[[field]]\ncrm = "code"\ncolumn = "code"\n[[field]]\ncrm = "name"\ncolumn = "name"\n'
         'constant = "x"', "two sources (column and constant)"),
        ('[[field]]\ncrm = "name"\ncolumn = "name"', "'code' must come from a column"),
        ('[[field]]\ncrm = "code"\nconstant = "KH"', "'code' must come from a column"),
        ('[[field]]\ncrm = "code"\ncolumn = "code"\ncreate_only = true', "cannot be create_only"),
        ('[[field]]\ncrm = "code"\ncolumn = "code"\ntransform = "title"', "unknown transform"),
        ('[[field]]\ncrm = "code"\ncolumn = "code"\nsource = "x"', "unknown keys ['source']"),
        ('[[field]]\ncrm = "code"\ncolumn = "code"\n[[field]]\ncrm = "name"', "no source"),
        ('change_columns = ["code", "colour"]\n[[field]]\ncrm = "code"\ncolumn = "code"',
         "unknown column 'colour'"),
        ('fields = 1', "unknown keys ['fields']"),
        ('', "no [[field]] entries"),
    ],
)
def test_a_mapping_that_cannot_mean_anything_is_refused_clearly(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        mapping_of(text)
    assert message in str(caught.value)


def test_the_mapping_file_names_itself_in_its_errors(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    assert read_mapping(path) is DEFAULT_MAPPING  # no file: the contract's fields
    path.write_text('[[field]]\ncrm = "code"\ncolumn = "kode"\n')
    with pytest.raises(ConfigError, match=r"mapping\.toml.*unknown column 'kode'"):
        read_mapping(path)
    path.write_text("[[field]\n")
    with pytest.raises(ConfigError, match=r"mapping\.toml"):
        read_mapping(path)


# ------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("transform", "raw", "sent"),
    [
        ("strip", "  Anh  ", "Anh"),
        ("upper", " công ty ", "CÔNG TY"),
        ("lower", "KH-ĐÀ", "kh-đà"),
        ("phone_digits", " +84 (90) 123-45.67 ", "84901234567"),
        ("phone_digits", " - ", None),
        ("upper", "   ", None),
    ],
)
def test_transforms(transform: str, raw: str, sent: str | None) -> None:
    mapping = mapping_of(
        f'[[field]]\ncrm = "code"\ncolumn = "code"\n'
        f'[[field]]\ncrm = "name"\ncolumn = "name"\ntransform = "{transform}"'
    )
    assert mapping.fields(row(name=raw))["name"] == sent


def test_transforms_see_composed_text() -> None:
    mapping = mapping_of(
        '[[field]]\ncrm = "code"\ncolumn = "code"\n'
        '[[field]]\ncrm = "name"\ncolumn = "name"\ntransform = "upper"'
    )
    nfd = unicodedata.normalize("NFD", "nguyễn")
    assert mapping.fields(row(name=nfd))["name"] == unicodedata.normalize("NFC", "NGUYỄN")


def test_a_constant_is_sent_whatever_the_row_and_unmapped_crm_fields_are_not_sent() -> None:
    fields = intent(change("c", after=row(1, "KH001", phone="090 111")), mapping_of(CUSTOM)).fields
    assert fields == {
        "code": "KH001",
        "name": "CUSTOMER KH001",
        "phone": "090111",
        "contact_name": "Accounts desk",
        "branch_code": "HQ",
    }


def test_a_column_debezium_could_not_read_leaves_its_field_out_but_not_a_constant() -> None:
    after = row(1, "KH001", phone=UNAVAILABLE)
    fields = intent(change("u", before=None, after=after), mapping_of(CUSTOM)).fields
    assert "phone" not in fields
    assert fields["contact_name"] == "Accounts desk"


def test_a_column_may_feed_a_field_of_another_name() -> None:
    mapping = mapping_of(
        '[[field]]\ncrm = "code"\ncolumn = "code"\n'
        '[[field]]\ncrm = "contact_name"\ncolumn = "name"\n'
        '[[field]]\ncrm = "name"\ncolumn = "tax_code"'
    )
    fields = mapping.fields(row(name="Lan", tax_code="0101234567"))
    assert fields == {"code": "KH001", "contact_name": "Lan", "name": "0101234567"}


# ------------------------------------------------------------- the default is today's behaviour


def today_fields(after: dict[str, Any]) -> dict[str, Any]:
    """What the sync sent before the mapping existed: each contract field, NFC and stripped."""
    return {name: clean_text(after[name]) for name in MAPPED_FIELDS}


@pytest.mark.parametrize(
    "after",
    [
        row(1, " kh001 "),
        row(2, "KH002", name=unicodedata.normalize("NFD", " Đức "), phone=" 090 ", email=""),
        row(3, "KH003", tax_code="0101234567", address="x" * 5000, contact_name="Lan"),
    ],
)
def test_the_default_mapping_sends_what_the_sync_always_sent(after: dict[str, Any]) -> None:
    assert DEFAULT_MAPPING.create_only == frozenset()
    assert DEFAULT_MAPPING.change_columns is None  # every column counts, as before
    made = intent(change("c", after=after), DEFAULT_MAPPING)
    assert made.fields == today_fields(after)
    assert made.create_only == frozenset()
    assert classify(change("c", after=after), DEFAULT_SCOPE) == made  # the default is the default


def test_the_default_mapping_still_hands_an_unmapped_only_edit_to_the_sink() -> None:
    """As before the mapping: the sink finds the CRM holds these values (R2a, no call)."""
    before = row(1, "KH001")
    c = change("u", before=before, after={**before, "is_vendor": True})
    made = intent(c, DEFAULT_MAPPING)
    decision = decide(made, {code_key("KH001"): crm(7, "KH001", name="Customer KH001")})
    assert decision.action is Action.UNCHANGED
    assert decision.call is None


# ------------------------------------------------------------- create-only fields


def test_create_only_fields_are_sent_on_create() -> None:
    made = intent(change("c", after=row(1, "KH001", branch_code="HN")), mapping_of(CUSTOM))
    assert made.create_only == frozenset({"branch_code"})
    decision = decide(made, {code_key("KH001"): None})
    assert isinstance(decision.call, Create)
    assert decision.call.fields["branch_code"] == "HN"


def test_an_update_never_writes_a_create_only_field_sales_changed() -> None:
    mapping = mapping_of(CUSTOM)
    c = change("u", before=row(1, "KH001"), after=row(1, "KH001", name="New name"))
    sales_branch = crm(
        7, "KH001", "default:1", branch_code="SALES-HN", contact_name="Accounts desk"
    )
    decision = decide(intent(c, mapping), {code_key("KH001"): sales_branch})
    assert isinstance(decision.call, Patch)
    assert decision.call.fields == {"name": "NEW NAME", "external_ref": "default:1"}

    # a difference in a create-only field alone is no difference: nothing is written
    c = change("u", before=row(1, "KH001"), after=row(1, "KH001", branch_code="DN"))
    same = crm(7, "KH001", "default:1", contact_name="Accounts desk")
    decision = decide(intent(c, mapping), {code_key("KH001"): same})
    assert decision.action is Action.UNCHANGED
    assert decision.call is None


def test_renames_and_our_own_record_under_another_code_leave_create_only_fields_alone() -> None:
    mapping = mapping_of(CUSTOM)
    c = change("u", before=row(1, "KH001"), after=row(1, "KH009", branch_code="DN"))
    made = intent(c, mapping)
    old = crm(7, "KH001", "default:1", branch_code="SALES", contact_name="Accounts desk")
    r2b = decide(made, {code_key("KH009"): None, code_key("KH001"): old})
    assert isinstance(r2b.call, Patch)
    assert "branch_code" not in r2b.call.fields
    assert r2b.call.fields["code"] == "KH009"

    r2d = decide(made, {code_key("KH009"): None, code_key("KH001"): None}, crm(8, "KH005",
                 "default:1", branch_code="SALES"))
    assert isinstance(r2d.call, Patch)
    assert "branch_code" not in r2d.call.fields


def test_an_insert_seen_again_refreshes_fields_but_not_create_only_ones() -> None:
    made = intent(change("c", after=row(1, "KH001", name="Renamed")), mapping_of(CUSTOM))
    ours = crm(7, "KH001", "default:1", branch_code="SALES", contact_name="Accounts desk")
    decision = decide(made, {code_key("KH001"): ours})
    assert isinstance(decision.call, Patch)
    assert decision.call.fields == {"name": "RENAMED"}


def test_create_only_fields_survive_the_command_topic_and_old_commands_still_decode() -> None:
    made = intent(change("c", after=row(1, "KH001")), mapping_of(CUSTOM))
    codec = command_type()
    back = intent_from_command(codec.decode(codec.encode(command_record(made, 5))))
    assert back == made

    # a command written before create_only existed (still on the topic after an upgrade)
    named: dict[str, Any] = {}
    fastavro.parse_schema(json.loads(schema_text("position")), named_schemas=named)
    v1 = fastavro.parse_schema(json.loads(schema_text("command_v1")), named_schemas=named)
    old = command_record(made, 5)
    del old["create_only"]
    body = io.BytesIO()
    fastavro.schemaless_writer(body, v1, old)
    canonical = fastavro.schema.to_parsing_canonical_form(v1)
    fp = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))[::-1]
    decoded = intent_from_command(codec.decode(b"\xc3\x01" + fp + body.getvalue()))
    assert decoded.create_only == frozenset()
    assert decoded.fields == made.fields


# ------------------------------------------------------------- which columns count as a change


def test_an_edit_of_unmapped_columns_only_writes_nothing() -> None:
    mapping = mapping_of(CUSTOM)
    before = row(1, "KH001")
    for edit in ({"is_vendor": True}, {"updated_at": "2026-12-01T00:00:00Z"}, {"email": "a@b.vn"}):
        decided = classify(change("u", before=before, after={**before, **edit}), DEFAULT_SCOPE,
                           mapping=mapping)
        assert isinstance(decided, Outcome), edit
        assert decided.action is Action.UNCHANGED
        assert decided.code == "KH001"
    # a mapped column, even a create-only one, is a change the sink decides
    for edit in ({"name": "x"}, {"phone": "1"}, {"branch_code": "DN"}):
        decided = classify(change("u", before=before, after={**before, **edit}), DEFAULT_SCOPE,
                           mapping=mapping)
        assert isinstance(decided, SyncIntent), edit


def test_change_columns_narrow_what_counts_and_a_code_change_always_counts() -> None:
    mapping = mapping_of('change_columns = ["name"]\n' + CUSTOM)
    assert mapping.change_columns == frozenset({"name", "code"})
    before = row(1, "KH001")
    phone_only = change("u", before=before, after={**before, "phone": "0901"})
    assert isinstance(classify(phone_only, DEFAULT_SCOPE, mapping=mapping), Outcome)
    renamed = change("u", before=before, after={**before, "code": "KH002"})
    assert isinstance(classify(renamed, DEFAULT_SCOPE, mapping=mapping), SyncIntent)
    toast = change("u", before=before, after={**before, "name": UNAVAILABLE})
    assert isinstance(classify(toast, DEFAULT_SCOPE, mapping=mapping), Outcome)


def test_a_row_entering_the_scope_is_a_change_whatever_columns_moved() -> None:
    mapping = mapping_of(CUSTOM)
    before = row(1, "KH001", is_customer=False)
    c = change("u", before=before, after={**before, "is_customer": True})
    made = classify(c, DEFAULT_SCOPE, mapping=mapping)
    assert isinstance(made, SyncIntent)  # R2c may create it
    assert made.op is Op.UPDATE


# ------------------------------------------------------------- the file in force, and preview


def test_a_broken_edit_keeps_the_last_good_mapping_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    watcher = MappingWatcher(path, every_s=0)
    assert watcher.current() is DEFAULT_MAPPING and watcher.error is None
    path.write_text(CUSTOM)
    good = watcher.current()
    assert good.create_only == frozenset({"branch_code"}) and watcher.error is None

    path.write_text(CUSTOM + '\n[[field]]\ncrm = "name"\ncolumn = "contact_name"\n')
    os.utime(path, (1, 1))  # a distinct modification time, whatever the clock's resolution
    assert watcher.current() is good
    assert watcher.error is not None and "two sources for CRM field 'name'" in watcher.error

    path.write_text(CUSTOM.replace('"upper"', '"lower"'))
    os.utime(path, (2, 2))
    assert watcher.current().fields(row(name="AB"))["name"] == "ab"
    assert watcher.error is None


def test_the_status_line_sees_an_edit_before_any_change_needs_the_mapping(
    tmp_path: Path,
) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text(CUSTOM)
    watcher = MappingWatcher(path, every_s=0)
    fields = len(watcher.current().rules)
    path.write_text('[[field]]\ncrm = "code"\ncolumn = "code"\ntransform = "uppercase"\n')
    os.utime(path, (1, 1))
    assert watcher.summary() == f"{path}; {fields} CRM fields"  # the last good one, kept
    assert watcher.error is not None and "uppercase" in watcher.error
    path.unlink()  # gone: the default mapping, and nothing wrong any more
    default = len(DEFAULT_MAPPING.rules)
    assert watcher.summary() == f"default (no mapping file); {default} CRM fields"
    assert watcher.error is None


def test_preview_lists_each_mapped_field_with_its_value() -> None:
    items = preview(mapping_of(CUSTOM), row(1, "KH001", phone="(090) 12"))
    assert [(i.field, i.value, i.create_only) for i in items] == [
        ("code", "KH001", False),
        ("name", "CUSTOMER KH001", False),
        ("phone", "09012", False),
        ("contact_name", "Accounts desk", False),
        ("branch_code", "HQ", True),
    ]


def test_a_file_broken_when_the_worker_starts_stops_it_with_the_error(tmp_path: Path) -> None:
    (tmp_path / "mapping.toml").write_text('[[field]]\ncrm = "code"\ncolumn = "kode"\n')
    with pytest.raises(ConfigError, match="unknown column 'kode'"):
        MappingWatcher(tmp_path / "mapping.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCT2CRM_")}
    started = subprocess.run(
        [sys.executable, "-m", "acct2crm.cli", "worker"],
        env={**env, "ACCT2CRM_HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert started.returncode != 0
    assert "unknown column 'kode'" in started.stderr
