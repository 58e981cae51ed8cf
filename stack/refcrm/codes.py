"""How the reference CRM compares customer codes (docs/rules.md).

Kept private to the CRM on purpose: the sync has its own copy in its rules,
so a change on one side cannot silently make both agree on a wrong rule.
"""

from __future__ import annotations

import unicodedata


def stored_code(code: str) -> str:
    """The code as the CRM stores it: NFC, stripped."""
    return unicodedata.normalize("NFC", code).strip()


def code_key(code: str) -> str:
    """The identity of a code: ``casefold(NFC(strip(code)))``."""
    return stored_code(code).casefold()
