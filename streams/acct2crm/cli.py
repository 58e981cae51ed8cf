"""The ``acct2crm`` command line (contract: docs/contract.md).

Each command only parses options and delegates to the module that does the
work, so the same operations are callable from tests.
"""

from __future__ import annotations

import sys

import typer

from acct2crm.commands.common import fail, with_worker_stopped

app = typer.Typer(
    name="acct2crm",
    help="Keep the CRM's customer list in step with the accounting system.",
    no_args_is_help=True,
    add_completion=False,
)

CONFIG_ERROR_EXIT = 2
PROBLEMS_EXIT = 1  # status --check: the report lists something that needs the operator


@app.callback()
def _read_settings() -> None:
    """Read and check the settings before any command: a bad key or value stops it here."""
    from acct2crm.errors import ConfigError
    from acct2crm.settings import get_settings, reset_settings

    if "--help" in sys.argv[1:]:
        return  # a command's help needs no settings, even broken ones
    reset_settings()
    try:
        get_settings()
    except ConfigError as exc:
        typer.secho(f"acct2crm: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=CONFIG_ERROR_EXIT) from exc


# ---------------------------------------------------------------- the sync


_fail = fail


@app.command()
def worker(
    loglevel: str | None = typer.Option(None, help="Log level (default: the log_level setting)."),
) -> None:
    """Run the Faust worker against the configured Kafka and CRM (until stopped)."""
    from acct2crm.app.worker import run_worker
    from acct2crm.errors import ConfigError
    from acct2crm.settings import get_settings

    try:
        run_worker(get_settings(), loglevel=loglevel)
    except ConfigError as exc:  # e.g. a CRM URL that would send the token in clear
        raise _fail(exc) from exc


@app.command()
def history(
    code: str = typer.Argument(..., help="Customer code, matched as the CRM does."),
    tenant: str | None = typer.Option(None, help="Only this tenant's results."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """What happened to one customer code, and why: every result, in the order applied."""
    import json

    from acct2crm.errors import Acct2CrmError
    from acct2crm.progress import code_history
    from acct2crm.settings import get_settings
    from acct2crm.tenants import read_registry
    from acct2crm.views import history_table

    settings = get_settings()
    try:
        records = code_history(settings, code)
        if tenant is not None:
            records = [r for r in records if r.get("tenant") == tenant]
            if not records:  # a typo, or a tenant removed since (its results still show)
                read_registry(settings).require(tenant)
    except Acct2CrmError as exc:
        raise _fail(exc) from exc
    if as_json:
        for record in records:
            typer.echo(json.dumps(record, ensure_ascii=False, default=str))
        return
    history_table(code, records)


@app.command()
def backfill(
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what R1 would do; write nothing."),
    wait: bool = typer.Option(False, "--wait", help="Follow the worker until it applied them."),
    tenant: str | None = typer.Option(
        None, help="The tenant whose accounting rows to backfill (default: the default one)."),
) -> None:
    """Apply R1 to every in-scope accounting row that exists now (snapshot rows included)."""
    from acct2crm import backfill as job
    from acct2crm.errors import Acct2CrmError
    from acct2crm.follow_worker import end_offset, follow_with_progress
    from acct2crm.replay import applied_positions
    from acct2crm.settings import get_settings
    from acct2crm.task_progress import track
    from acct2crm.topic_partitions import commands_partition
    from acct2crm.views import backfill_table

    settings = get_settings()
    try:
        chosen = job.tenant_of(settings, tenant)
        lsn, rows = job.snapshot_rows(settings, chosen)
        planned = job.plan(settings, chosen, lsn, rows)
        applied = applied_positions(settings)  # rows synced already: the sink leaves them
        if dry_run:
            backfill_table(list(job.dry_run(settings, chosen, planned.intents, applied)),
                           planned.outcomes)
            return
        synced = sum(job.synced_at(i, applied) is not None for i in planned.intents)
        # the commands go to the tenant's partition (its lane, its tables): follow that one
        partition = commands_partition(settings, chosen.id)
        start = end_offset(settings, settings.commands_topic, partition)
        with track("backfill: sending rows", len(planned.intents), "rows") as tracker:
            sent = job.send(settings, planned.intents, tracker)
        typer.echo(
            f"{sent} in-scope rows sent to the sink as inserts (R1), {synced} of them synced "
            "already (recorded unchanged, nothing written); "
            f"{len(planned.outcomes)} left alone. Follow with `acct2crm status`."
        )
        if wait and sent:
            end = end_offset(settings, settings.commands_topic, partition)
            follow_with_progress(settings, settings.commands_topic, {partition: start},
                                 {partition: end}, what="backfill: applied by the worker",
                                 unit="commands")
    except Acct2CrmError as exc:
        raise _fail(exc) from exc


@app.command()
def replay(
    from_offset: int | None = typer.Option(None, "--from-offset", help="Change-topic offset."),
    from_timestamp: str | None = typer.Option(
        None, "--from-timestamp", help="ISO 8601 time (UTC if no zone) or epoch ms."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would happen; move nothing."),
    wait: bool = typer.Option(False, "--wait", help="Follow the worker through the replay."),
    partition: int | None = typer.Option(
        None, "--partition", help="Only this partition (default: every partition; an offset "
        "then applies to each one)."),
) -> None:
    """Re-read the change topic from an offset or a time; applied changes write nothing."""
    from acct2crm import replay as job
    from acct2crm.errors import Acct2CrmError
    from acct2crm.follow_worker import follow_with_progress
    from acct2crm.settings import get_settings
    from acct2crm.task_progress import track
    from acct2crm.views import replay_table

    if (from_offset is None) == (from_timestamp is None):
        raise _fail(ValueError("give exactly one of --from-offset or --from-timestamp"))
    settings = get_settings()
    try:
        starts, ends = job.starts_for(settings, from_offset, from_timestamp, partition)
        total = sum(ends[p] - o for p, o in starts.items())
        if dry_run:
            with track("replay (dry run): reading", total, "offsets") as tracker:
                previews = list(job.dry_run(settings, starts, tracker))
            replay_table(starts, previews)
            return
        restarted = with_worker_stopped(settings, lambda: job.rewind(settings, starts))
        typer.echo(
            f"worker rewound to {job.describe(starts)} of {settings.change_topic}"
            + ("; worker restarted" if restarted else "; start the worker to replay")
        )
        if wait and total > 0:
            follow_with_progress(settings, settings.change_topic, starts, ends,
                                 what="replay: re-read by the worker", unit="offsets")
    except Acct2CrmError as exc:
        raise _fail(exc) from exc



@app.command()
def status(
    as_json: bool = typer.Option(False, "--json", help="The stable JSON form (docs/contract.md)."),
    check: bool = typer.Option(
        False, "--check", help="Exit 1 when something needs the operator (the report's problems)."
    ),
) -> None:
    """Endpoints, services with their pids, connector state, lag, counts, last failures."""
    from acct2crm import status_report as report
    from acct2crm.settings import get_settings

    found = report.collect(get_settings())
    typer.echo(report.as_json(found) if as_json else report.as_text(found))
    if check and found["problems"]:
        raise typer.Exit(PROBLEMS_EXIT)


from acct2crm.dlq_cli import dlq_app  # noqa: E402 - registered where it is listed

app.add_typer(dlq_app, name="dlq")


@app.command()
def pause(tenant: str = typer.Argument(..., help="Tenant whose CRM writes wait.")) -> None:
    """Hold a tenant's changes in Kafka (as if its CRM were down) until `resume`."""
    from acct2crm import pause as job
    from acct2crm.errors import Acct2CrmError
    from acct2crm.settings import get_settings

    try:
        changed = job.pause(get_settings(), tenant)
    except Acct2CrmError as exc:  # no such tenant, or a pause file that cannot be read
        raise _fail(exc) from exc
    typer.echo(f"tenant {tenant} " + ("paused: its changes wait in Kafka" if changed
                                      else "was already paused"))


@app.command()
def resume(tenant: str = typer.Argument(..., help="Paused tenant.")) -> None:
    """Let a paused tenant's changes go on to the CRM, in order."""
    from acct2crm import pause as job
    from acct2crm.errors import Acct2CrmError
    from acct2crm.settings import get_settings

    try:
        changed = job.resume(get_settings(), tenant)
    except Acct2CrmError as exc:  # a pause file that cannot be read
        raise _fail(exc) from exc
    typer.echo(f"tenant {tenant} " + ("resumed" if changed else "was not paused"))


def _mount_groups() -> None:
    from acct2crm.commands.config import config_app
    from acct2crm.commands.connectors import connectors_app
    from acct2crm.commands.mapping import mapping_app
    from acct2crm.commands.positions import positions_app
    from acct2crm.commands.scope import scope_app

    app.add_typer(scope_app, name="scope")
    app.add_typer(mapping_app, name="mapping")
    app.add_typer(positions_app, name="positions")
    app.add_typer(config_app, name="config")
    app.add_typer(connectors_app, name="connectors")


_mount_groups()


def main() -> None:
    from acct2crm.errors import ConfigError
    from acct2crm.local_stack import find_local_stack

    stack = find_local_stack()
    if stack is not None:
        stack.register_commands(app)
    try:
        app()
    except ConfigError as exc:  # settings read later than the callback (a bug, but no traceback)
        typer.secho(f"acct2crm: {exc}", fg=typer.colors.RED, err=True)
        raise SystemExit(CONFIG_ERROR_EXIT) from exc


if __name__ == "__main__":
    main()
