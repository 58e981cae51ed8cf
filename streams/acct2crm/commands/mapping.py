"""``acct2crm mapping show|preview``: the field mapping, and what a row would send."""

from __future__ import annotations

import typer

from acct2crm.commands.common import fail

mapping_app = typer.Typer(help="Show the field mapping, or what the CRM would receive for a row.")


@mapping_app.command("show")
def mapping_show() -> None:
    """Print the field mapping in force and the file it comes from."""
    from acct2crm.errors import ConfigError
    from acct2crm.mapping_file import read_mapping
    from acct2crm.settings import get_settings

    path = get_settings().effective_mapping_file
    try:
        mapping = read_mapping(path)
    except ConfigError as exc:
        raise fail(exc) from exc
    origin = str(path) if path.exists() else f"{path} (absent: each CRM field from its column)"
    typer.echo(f"mapping file: {origin}")
    for line in mapping.describe():
        typer.echo(f"  {line}")


@mapping_app.command("preview")
def mapping_preview(
    code: str = typer.Argument(..., help="Customer code, matched as the CRM does."),
) -> None:
    """What the CRM would receive for this accounting row now (reads PostgreSQL; writes nothing)."""
    from acct2crm.errors import Acct2CrmError
    from acct2crm.mapping_file import read_mapping
    from acct2crm.mapping_preview import preview, read_row
    from acct2crm.scope_file import read_scope
    from acct2crm.settings import get_settings

    settings = get_settings()
    try:
        mapping = read_mapping(settings.effective_mapping_file)
        scope = read_scope(settings.effective_scope_file)
        row = read_row(settings, code, mapping.code_column)
    except Acct2CrmError as exc:
        raise fail(exc) from exc
    if row is None:
        raise fail(LookupError(f"no accounting row has code {code!r}"))
    if not scope.contains(row):
        typer.echo(f"note: this row is out of the sync scope ({scope.describe()}); "
                   "nothing is sent for it while it stays out")
    typer.echo(f"accounting row {row['id']}: the CRM would receive")
    for item in preview(mapping, row):
        note = "  (create only: an update leaves it to sales)" if item.create_only else ""
        typer.echo(f"  {item.field:<14} {item.value!r}{note}")
