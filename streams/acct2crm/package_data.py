"""Files that ship inside the package: Avro schemas and connector templates.

They are read through ``importlib.resources`` so an installed wheel finds them
from any working directory; the repository's top-level ``schemas/`` and
``connectors/`` are links to these folders.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

_ASSETS = files("acct2crm").joinpath("assets")


def schema_text(name: str) -> str:
    """The Avro schema ``<name>.avsc`` as text."""
    return _ASSETS.joinpath("schemas", f"{name}.avsc").read_text(encoding="utf-8")


def connector_templates() -> list[Traversable]:
    """Every connector template (``*.json``), sorted by name."""
    folder = _ASSETS.joinpath("connectors")
    return sorted(
        (item for item in folder.iterdir() if item.name.endswith(".json")),
        key=lambda item: item.name,
    )
