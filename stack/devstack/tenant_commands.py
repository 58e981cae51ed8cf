"""``acct2crm tenants add|list``: companies on the local stack (the workbench makes databases)."""

from __future__ import annotations

import json

import typer

from acct2crm.errors import Acct2CrmError
from acct2crm.settings import get_settings, shown_dsn
from devstack import tenants

tenants_app = typer.Typer(help="Tenants (companies) of the local stack.", no_args_is_help=True)


@tenants_app.command("add")
def add(tenant_id: str = typer.Argument(..., metavar="ID", help="[a-z0-9_]{1,32}")) -> None:
    """Make the tenant's database, CRM account, registry entry and connector; idempotent."""
    try:
        tenants.add(get_settings(), tenant_id, echo=typer.echo)
    except Acct2CrmError as exc:
        typer.secho(f"acct2crm: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from exc


@tenants_app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Machine-readable.")) -> None:
    """Every tenant with its database DSN, CRM URL and token (local stack: tokens shown)."""
    try:
        found = tenants.listing(get_settings())
    except Acct2CrmError as exc:
        typer.secho(f"acct2crm: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from exc
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    for tenant_id, entry in found.items():
        typer.echo(f"{tenant_id}: {shown_dsn(entry['postgres_dsn'])}  CRM {entry['crm_url']}")
