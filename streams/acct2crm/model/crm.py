"""What the sync knows of a CRM customer, as the CRM's own replies said it."""

from __future__ import annotations

from dataclasses import dataclass

Fields = dict[str, str | None]


@dataclass(frozen=True)
class CrmRecord:
    """One CRM customer: its id, the mapped fields and whose row it follows."""

    id: int
    fields: Fields
    external_ref: str | None = None

    @property
    def code(self) -> str:
        return self.fields.get("code") or ""
