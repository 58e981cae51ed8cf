"""`backfill --dry-run` says what the sink will do: a row synced already is a replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from acct2crm import backfill
from acct2crm.errors import ConfigError
from acct2crm.model.crm import CrmRecord
from acct2crm.model.keys import row_key
from acct2crm.rules.change import Action
from acct2crm.settings import Settings
from acct2crm.tenants import Tenant


def accounting_row(row_id: int, code: str) -> dict[str, Any]:
    return {"id": row_id, "code": code, "name": f"Customer {code}", "tax_code": None,
            "address": None, "phone": None, "email": None, "contact_name": None,
            "branch_code": "HN", "is_customer": True, "is_vendor": False}


def test_a_row_the_worker_synced_is_a_replay_and_the_others_are_decided_on_the_crm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(home=tmp_path)
    lsn, rows = backfill.BACKFILL_POSITION.lsn, [accounting_row(1, "BF1"),
                                                accounting_row(2, "BF2")]
    tenant = backfill.tenant_of(settings, None)
    planned = backfill.plan(settings, tenant, lsn, rows)
    assert [i.accounting_id for i in planned.intents] == [1, 2]

    async def crm_view(_settings: Settings, _tenant: Tenant) -> dict[str, CrmRecord]:
        # the CRM has row 1's record, created by the live sync
        return {"BF1": CrmRecord(id=11, fields={"code": "BF1", "name": "Customer BF1"},
                                 external_ref="default:1")}

    monkeypatch.setattr(backfill, "_crm_view", crm_view)
    applied = {row_key("default", 1): 4_242}  # the worker synced row 1 at lsn 4242
    found = {i.accounting_id: (action, reason)
             for i, action, reason in backfill.dry_run(settings, tenant, planned.intents,
                                                              applied)}
    assert found[1] == (Action.UNCHANGED,
                        "replay: this row was already synced at lsn 4242; nothing written")
    assert found[2][0] is Action.CREATED
    assert [backfill.synced_at(i, applied) for i in planned.intents] == [4_242, None]


def test_a_tenants_backfill_reads_its_database_crm_and_scope(tmp_path: Path) -> None:
    (tmp_path / "acme.token").write_text("acme-token\n")
    (tmp_path / "tenants.toml").write_text(
        f'[tenants.acme]\ncrm_token_file = "{tmp_path / "acme.token"}"\n'
        'crm_url = "https://crm.acme.example"\n')
    settings = Settings(home=tmp_path)
    own = backfill.tenant_of(settings, "acme")
    assert (own.id, own.database, own.crm_url) == (
        "acme", "accounting_acme", "https://crm.acme.example")
    assert own.crm_token.get_secret_value() == "acme-token"
    assert own.scope_file == tmp_path / "scopes" / "acme.toml"
    default = backfill.tenant_of(settings, None)
    assert (default.id, default.database) == ("default", settings.pg_database)
    assert backfill.tenant_of(settings, "default") == default
    with pytest.raises(ConfigError, match="no tenant 'acm'; the tenants are: default, acme"):
        backfill.tenant_of(settings, "acm")
    # the rows of acme are planned as acme's, against acme's scope
    planned = backfill.plan(settings, own, 0, [accounting_row(5, "AC5")])
    assert [(i.tenant, i.accounting_id) for i in planned.intents] == [("acme", 5)]
