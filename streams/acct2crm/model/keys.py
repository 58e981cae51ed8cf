"""Keys of the worker's tables, built in one place with one separator.

The separator is the ASCII unit separator, which no tenant id, code key,
topic name or number contains, so a key splits back unambiguously.
"""

from __future__ import annotations

SEP = "\x1f"


def code_entry_key(tenant: str, code_key: str) -> str:
    """``code_to_customer``: what the CRM holds under one (matching) code."""
    return f"{tenant}{SEP}{code_key}"


def row_key(tenant: str, accounting_id: int) -> str:
    """``row_to_position``: the last source position applied for one row."""
    return f"{tenant}{SEP}{accounting_id}"


def offset_key(topic: str, partition: int) -> str:
    """``topic_offsets``: the last offset an agent handled in one partition."""
    return f"{topic}{SEP}{partition}"


def tenant_offset_key(topic: str, partition: int, tenant: str) -> str:
    """``topic_offsets``: the last offset of one tenant's commands done in one partition."""
    return f"{topic}{SEP}{partition}{SEP}{tenant}"


def row_lane_token(accounting_id: int) -> str:
    """A sink lane token for a row, apart from every code key."""
    return f"row{SEP}{accounting_id}"
