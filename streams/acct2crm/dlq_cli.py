"""The ``acct2crm dlq`` commands (logic in dlq.py)."""

from __future__ import annotations

import json

import typer

dlq_app = typer.Typer(help="Dead letters: list them, re-drive them from the rows' current state.")


def _fail(exc: Exception) -> typer.Exit:
    typer.secho(f"acct2crm: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


@dlq_app.command("list")
def dlq_list(
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant's letters."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """Every dead letter: offset, row, code, why it failed, and whether it was re-driven."""
    from rich.table import Table

    from acct2crm import dlq
    from acct2crm.errors import Acct2CrmError
    from acct2crm.settings import get_settings
    from acct2crm.tenants import read_registry
    from acct2crm.views import console

    settings = get_settings()
    try:
        letters = dlq.dead_letters(settings, tenant)
        if tenant is not None and not letters:  # a typo, or a tenant removed since
            read_registry(settings).require(tenant)
    except Acct2CrmError as exc:
        raise _fail(exc) from exc
    if as_json:
        for letter in letters:
            typer.echo(json.dumps(letter.as_dict(), ensure_ascii=False, default=str))
        return
    table = Table(title=f"Dead letters ({len(letters)})")
    for name in ("offset", "tenant", "row", "code", "op", "failed at", "reason", "re-driven"):
        table.add_column(name, overflow="fold")
    for x in letters:
        table.add_row(str(x.offset), x.tenant, str(x.accounting_id or "—"), x.code or "—", x.op,
                      x.failed_at, x.reason, (x.redriven or {}).get("what", "no"))
    console.print(table)


@dlq_app.command("retry")
def dlq_retry(
    all_letters: bool = typer.Option(False, "--all", help="Every letter not re-driven yet."),
    offset: list[int] | None = typer.Option(  # noqa: B008 - typer's option, not a call site
        None, "--offset", help="A letter's offset (repeatable)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the decisions; send nothing."),
) -> None:
    """Decide failed changes again from their rows as they are now in accounting."""
    from acct2crm import dlq
    from acct2crm.errors import Acct2CrmError
    from acct2crm.settings import get_settings

    if all_letters == bool(offset):
        raise _fail(ValueError("give either --all or one or more --offset N"))
    settings = get_settings()
    try:
        chosen = dlq.choose(dlq.dead_letters(settings), None if all_letters else offset)
        planned = dlq.plan(settings, chosen)
        done = planned if dry_run else dlq.send(settings, planned)
    except Acct2CrmError as exc:
        raise _fail(exc) from exc
    verb = "would be" if dry_run else "was"
    for item in planned:
        x = item.letter
        typer.echo(f"dead letter {x.offset} (row {x.accounting_id}, {x.code}) {verb}: {item.what}")
    if not planned:
        typer.echo("nothing to re-drive")
    elif not dry_run:
        typer.echo(f"{len(done)} re-driven; their new results follow (acct2crm dlq list, "
                   "acct2crm history CODE)")
