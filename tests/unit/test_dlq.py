"""Which dead letters a re-drive takes, and what a letter says about its row."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from acct2crm import dlq
from acct2crm.dlq import DeadLetter, _describe, choose, plan
from acct2crm.errors import StackError
from acct2crm.records.avro import command_type
from acct2crm.records.convert import command_record
from acct2crm.rules.change import Op, Position
from acct2crm.rules.decide import SyncIntent
from acct2crm.settings import Settings
from acct2crm.tenants import Tenant
from tests.support.changes import row


def letter(offset: int, redriven: bool = False) -> DeadLetter:
    return DeadLetter(
        offset=offset, tenant="default", accounting_id=offset, code=f"C{offset}", op="c",
        lsn=100 + offset, topic="acct2crm.commands", error="CrmRejected", reason="422",
        failed_at="2026-11-30T00:00:00", redriven={"at": 1} if redriven else None,
    )


def test_all_takes_only_the_letters_never_redriven() -> None:
    letters = [letter(0, redriven=True), letter(1), letter(2)]
    assert [x.offset for x in choose(letters, None)] == [1, 2]


def test_offsets_take_those_named_redriven_or_not() -> None:
    letters = [letter(0, redriven=True), letter(1)]
    assert [x.offset for x in choose(letters, [1, 0, 1])] == [0, 1]
    with pytest.raises(StackError, match="offset"):
        choose(letters, [7])


def _dead(topic: str, key: bytes | None, value: bytes | None) -> dict[str, Any]:
    return {"topic": topic, "key": key, "value": value, "error": "E", "reason": "why",
            "failed_at": datetime(2026, 11, 30, tzinfo=UTC)}


def test_a_letter_names_its_row_code_and_position_from_what_it_kept() -> None:
    settings = Settings()
    change = {"op": "u", "before": None, "after": row(7, ""),
              "source": {"lsn": 4242, "txId": 1, "ts_ms": 1}}
    from_change = _describe(settings, 3, _dead(settings.change_topic, b'{"id": 7}',
                                               json.dumps(change).encode()))
    assert (from_change.accounting_id, from_change.op, from_change.lsn) == (7, "u", 4242)
    intent = SyncIntent(tenant="t2", accounting_id=9, op=Op.CREATE, code="KH9",
                        previous_code=None, fields={"code": "KH9"}, position=Position(lsn=77))
    value = command_type().encode(command_record(intent, 12))
    from_command = _describe(settings, 4, _dead(settings.commands_topic, b"9", value))
    assert (from_command.tenant, from_command.accounting_id, from_command.code,
            from_command.op, from_command.lsn) == ("t2", 9, "KH9", "c", 77)
    unreadable = _describe(settings, 5, _dead(settings.change_topic, None, b"not json"))
    assert (unreadable.accounting_id, unreadable.lsn) == (None, None)


def test_a_changes_letter_belongs_to_the_tenant_whose_database_it_came_from() -> None:
    settings = Settings()
    tenant_of = {"accounting": "default", "accounting_acme": "acme"}.get

    def from_db(database: str) -> DeadLetter:
        change = {"op": "c", "before": None, "after": row(7, "AC7"),
                  "source": {"lsn": 4242, "txId": 1, "ts_ms": 1, "db": database}}
        return _describe(settings, 3, _dead(settings.change_topic, b'{"id": 7}',
                                            json.dumps(change).encode()), tenant_of)

    assert (from_db("accounting_acme").tenant, from_db("accounting_acme").accounting_id) == (
        "acme", 7)
    assert from_db("accounting").tenant == "default"
    gone = from_db("accounting_gone")  # a tenant since removed: its row, no tenant to guess
    assert (gone.tenant, gone.accounting_id, gone.code) == ("?", 7, "AC7")


def test_a_redrive_reads_each_letters_row_from_its_own_tenants_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "acme.token").write_text("t\n")
    (tmp_path / "tenants.toml").write_text(
        f'[tenants.acme]\ncrm_token_file = "{tmp_path / "acme.token"}"\n')
    (tmp_path / "scopes").mkdir()
    (tmp_path / "scopes" / "acme.toml").write_text("customers_only = false\n")  # vendors too
    (tmp_path / "mapping.toml").write_text(
        '[[field]]\ncrm = "code"\ncolumn = "code"\n\n'
        '[[field]]\ncrm = "name"\ncolumn = "name"\ntransform = "upper"\n')
    settings = Settings(home=tmp_path)
    # the same id in both databases: a different customer in each
    databases = {
        "accounting": {2: {**row(2, "LD2"), "name": "load 2"}},
        "accounting_acme": {2: {**row(2, "AC2"), "name": "acme two", "is_customer": False,
                                "is_vendor": True}},
    }
    asked: list[tuple[str, list[int]]] = []

    def rows_now(_s: Settings, tenant: Tenant, ids: Iterable[int]) -> dict[int, Any]:
        asked.append((tenant.database, sorted(ids)))
        return {i: databases[tenant.database][i] for i in ids if i in databases[tenant.database]}

    monkeypatch.setattr(dlq, "_rows_now", rows_now)
    letters = [replace(letter(2), tenant="acme"), replace(letter(2), tenant="default", offset=3),
               replace(letter(2), tenant="gone", offset=4)]
    acme, default, gone = plan(settings, letters)
    assert sorted(asked) == [("accounting", [2]), ("accounting_acme", [2])]
    assert acme.intent is not None and acme.intent.tenant == "acme"
    assert acme.intent.fields["code"] == "AC2"  # acme's own row, in acme's scope (a vendor)
    assert acme.intent.fields["name"] == "ACME TWO"  # through the field mapping
    assert default.intent is not None and default.intent.fields["code"] == "LD2"
    assert gone.intent is None and gone.outcome is None
    assert gone.what == "cannot re-drive: tenant 'gone' is not in the tenants file (its " \
        "database is unknown)"
