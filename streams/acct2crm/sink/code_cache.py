"""The CRM-code table seen as a cache of the CRM, which stays the authority.

Backed by any mutable mapping (a Faust table in the worker, a dict in tests).
Keys are ``code_entry_key(tenant, code_key)`` (model/keys.py); values are plain dicts so the table's
changelog can hold them. Every CRM reply passes through ``remember``.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

from acct2crm.model.crm import CrmRecord
from acct2crm.model.keys import code_entry_key
from acct2crm.rules.codes import code_key

SEEDED = " seeded"  # codes are stripped, so no code key starts with a space


class CodeCache:
    def __init__(self, table: MutableMapping[str, Any], tenant: str) -> None:
        self._table = table
        self._tenant = tenant

    def _key(self, key: str) -> str:
        return code_entry_key(self._tenant, key)

    @property
    def seeded(self) -> bool:
        return bool(self._table.get(self._key(SEEDED)))

    def mark_seeded(self) -> None:
        self._table[self._key(SEEDED)] = _entry(None, {}, None, absent=False)

    def known(self, key: str) -> bool:
        """True when the cache can answer for this code key without the CRM."""
        return self.seeded or self._key(key) in self._table

    def get(self, key: str) -> CrmRecord | None:
        value = self._table.get(self._key(key))
        if not value or value.get("absent") or value.get("id") is None:
            return None
        return CrmRecord(
            id=int(value["id"]),
            fields=dict(value["fields"]),
            external_ref=value.get("external_ref"),
        )

    def remember(self, record: CrmRecord) -> None:
        self._table[self._key(code_key(record.code))] = _entry(
            record.id, dict(record.fields), record.external_ref, absent=False
        )

    def remember_listed(self, record: CrmRecord, asked_at_ms: int) -> bool:
        """A record from a page of the CRM's list asked at ``asked_at_ms``.

        Kept unless the table heard of that code since the page was asked (a
        write or look-up of the change path): the newer word stays. False if
        skipped.
        """
        if not record.code.strip():
            return False
        key = self._key(code_key(record.code))
        current = self._table.get(key)
        if current and int(current.get("seen_at") or 0) >= asked_at_ms:
            return False
        self._table[key] = _entry(
            record.id, dict(record.fields), record.external_ref, absent=False
        )
        return True

    def note(self, name: str) -> dict[str, Any] | None:
        """A bookkeeping entry (its name starts with a space, as no code key does)."""
        value = self._table.get(self._key(name))
        return dict(value) if value else None

    def write_note(self, name: str, number: int | None, fields: dict[str, str | None]) -> None:
        self._table[self._key(name)] = _entry(number, fields, None, absent=False)

    def remember_absent(self, key: str) -> None:
        if self.seeded:
            self._table.pop(self._key(key), None)
        else:
            self._table[self._key(key)] = _entry(None, {}, None, absent=True)

    def forget_if(self, key: str, crm_id: int) -> None:
        """A record moved away from ``key`` (rename): drop the stale entry."""
        value = self._table.get(self._key(key))
        if value and not value.get("absent") and value.get("id") == crm_id:
            self.remember_absent(key)
        elif value is None and not self.seeded:
            # seeding may still bring an older page naming the record there
            self.remember_absent(key)


def _entry(
    crm_id: int | None, fields: dict[str, str | None], ref: str | None, *, absent: bool
) -> dict[str, Any]:
    """A table value in the shape of schemas/crm_record.avsc."""
    return {
        "id": crm_id,
        "fields": fields,
        "external_ref": ref,
        "absent": absent,
        "seen_at": int(time.time() * 1000),
    }
