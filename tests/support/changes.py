"""Builders for accounting rows and Debezium-shaped changes in unit tests."""

from __future__ import annotations

from typing import Any

from acct2crm.rules.change import Change, Op, Position


def row(id_: int = 1, code: str = "KH001", **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": id_,
        "code": code,
        "name": f"Customer {code}",
        "tax_code": None,
        "address": None,
        "phone": None,
        "email": None,
        "contact_name": None,
        "branch_code": "HQ",
        "is_customer": True,
        "is_vendor": False,
        "updated_at": "2026-11-29T00:00:00Z",
    }
    base.update(overrides)
    return base


def change(
    op: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    lsn: int = 100,
    tenant: str = "default",
) -> Change:
    source = after if after is not None else before
    return Change(
        tenant=tenant,
        op=Op(op),
        accounting_id=source["id"] if source else None,
        before=before,
        after=after,
        position=Position(lsn=lsn, tx_id=lsn // 10, ts_ms=lsn),
    )
