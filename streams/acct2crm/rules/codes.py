"""Text normalisation shared by every rule that compares or sends text."""

from __future__ import annotations

import unicodedata


def clean_text(value: str | None) -> str | None:
    """NFC and stripped, as the CRM must receive it; empty means null."""
    if value is None:
        return None
    text = unicodedata.normalize("NFC", value).strip()
    return text or None


def code_key(code: str) -> str:
    """The identity of a code: ``"kh001 "`` and ``"KH001"`` are the same customer."""
    return unicodedata.normalize("NFC", code).strip().casefold()
