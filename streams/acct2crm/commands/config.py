"""``acct2crm config show``: the settings in force and where each comes from."""

from __future__ import annotations

import typer

config_app = typer.Typer(help="The settings in force and where each comes from.")


@config_app.command("show")
def config_show(
    as_json: bool = typer.Option(False, "--json", help="One JSON object, secrets masked."),
) -> None:
    """Every setting's effective value and its source (env, file, default); secrets masked."""
    from acct2crm import config_report
    from acct2crm.settings import get_settings

    found = config_report.collect(get_settings())
    typer.echo(config_report.as_json(found) if as_json else config_report.as_text(found))
