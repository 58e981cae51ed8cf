"""Per row, the source position of the last change applied to the CRM.

Backed by any mutable mapping (the ``row_to_position`` Faust table, or a
dict in tests); values are Position records (schemas/position.avsc).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from acct2crm.model.keys import row_key
from acct2crm.rules.change import Position

position_key = row_key


class PositionBook:
    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self._table = table

    def applied(self, tenant: str, accounting_id: int) -> Position | None:
        value = self._table.get(position_key(tenant, accounting_id))
        if value is None:
            return None
        if isinstance(value, int):  # written before positions carried the whole source block
            return Position(lsn=value)
        return Position(lsn=int(value["lsn"]), tx_id=value.get("tx_id"), ts_ms=value.get("ts_ms"))

    def record(self, tenant: str, accounting_id: int, position: Position) -> None:
        self._table[position_key(tenant, accounting_id)] = {
            "lsn": position.lsn,
            "tx_id": position.tx_id,
            "ts_ms": position.ts_ms,
        }
