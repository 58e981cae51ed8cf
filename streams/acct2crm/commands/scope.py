"""``acct2crm scope show|set``: which accounting rows are synced."""

from __future__ import annotations

import typer

from acct2crm.commands.common import fail

scope_app = typer.Typer(help="Show or change which accounting rows are synced (the sync scope).")


@scope_app.command("show")
def scope_show() -> None:
    """Print the sync scope in force and the file it comes from."""
    from acct2crm.errors import ConfigError
    from acct2crm.scope_file import read_scope
    from acct2crm.settings import get_settings

    path = get_settings().effective_scope_file
    try:
        scope = read_scope(path)
    except ConfigError as exc:
        raise fail(exc) from exc
    origin = str(path) if path.exists() else f"{path} (absent: defaults)"
    typer.echo(f"scope file: {origin}\nin force:   {scope.describe()}")


@scope_app.command("set")
def scope_set(
    branches: str | None = typer.Option(
        None, help='Comma-separated branch codes, or "all".'
    ),
    customers_only: bool | None = typer.Option(
        None, "--customers-only/--customers-and-vendors", help="Sync only rows with is_customer."
    ),
    replace: bool = typer.Option(
        False, "--replace",
        help="Start from the default scope, not the file: rewrites a broken file (its "
        "where conditions are dropped).",
    ),
) -> None:
    """Change the scope file; the worker applies it to changes from then on."""
    import dataclasses

    from acct2crm.errors import ConfigError
    from acct2crm.rules.scope import DEFAULT_SCOPE
    from acct2crm.scope_file import read_scope, write_scope
    from acct2crm.settings import get_settings

    path = get_settings().effective_scope_file
    try:
        scope = DEFAULT_SCOPE if replace else read_scope(path)
    except ConfigError as exc:
        hint = (f"{exc}; fix {path} by hand, or write it anew with `acct2crm scope set "
                "--replace` and your options (its where conditions are then dropped)")
        raise fail(ConfigError(hint)) from exc
    if branches is not None:
        chosen = None if branches.strip().lower() == "all" else frozenset(
            b.strip() for b in branches.split(",") if b.strip()
        )
        scope = dataclasses.replace(scope, branches=chosen)
    if customers_only is not None:
        scope = dataclasses.replace(scope, customers_only=customers_only)
    write_scope(path, scope)
    typer.echo(f"scope written to {path}: {scope.describe()}")
