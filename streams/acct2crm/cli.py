"""The ``acct2crm`` command line (contract: docs/contract.md).

Each command only parses options and delegates to the module that does the
work, so the same operations are callable from tests.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from acct2crm.settings import Settings

app = typer.Typer(
    name="acct2crm",
    help="Keep the CRM's customer list in step with the accounting system.",
    no_args_is_help=True,
    add_completion=False,
)

CONFIG_ERROR_EXIT = 2


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


def _fail(exc: Exception) -> typer.Exit:
    typer.secho(f"acct2crm: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


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
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
) -> None:
    """What happened to one customer code, and why: every result, in commit order."""
    import json

    from acct2crm.errors import Acct2CrmError
    from acct2crm.progress import code_history
    from acct2crm.settings import get_settings
    from acct2crm.views import history_table

    try:
        records = code_history(get_settings(), code)
    except Acct2CrmError as exc:
        raise _fail(exc) from exc
    if as_json:
        for record in records:
            typer.echo(json.dumps(record, ensure_ascii=False, default=str))
        return
    history_table(code, records)


scope_app = typer.Typer(help="Show or change which accounting rows are synced (the sync scope).")
app.add_typer(scope_app, name="scope")


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
        raise _fail(exc) from exc
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
) -> None:
    """Change the scope file; the worker applies it to changes from then on."""
    import dataclasses

    from acct2crm.errors import ConfigError
    from acct2crm.scope_file import read_scope, write_scope
    from acct2crm.settings import get_settings

    path = get_settings().effective_scope_file
    try:
        scope = read_scope(path)
    except ConfigError as exc:
        raise _fail(exc) from exc
    if branches is not None:
        chosen = None if branches.strip().lower() == "all" else frozenset(
            b.strip() for b in branches.split(",") if b.strip()
        )
        scope = dataclasses.replace(scope, branches=chosen)
    if customers_only is not None:
        scope = dataclasses.replace(scope, customers_only=customers_only)
    write_scope(path, scope)
    typer.echo(f"scope written to {path}: {scope.describe()}")


mapping_app = typer.Typer(help="Show the field mapping, or what the CRM would receive for a row.")
app.add_typer(mapping_app, name="mapping")


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
        raise _fail(exc) from exc
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
        raise _fail(exc) from exc
    if row is None:
        raise _fail(LookupError(f"no accounting row has code {code!r}"))
    if not scope.contains(row):
        typer.echo(f"note: this row is out of the sync scope ({scope.describe()}); "
                   "nothing is sent for it while it stays out")
    typer.echo(f"accounting row {row['id']}: the CRM would receive")
    for item in preview(mapping, row):
        note = "  (create only: an update leaves it to sales)" if item.create_only else ""
        typer.echo(f"  {item.field:<14} {item.value!r}{note}")


@app.command()
def backfill(
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what R1 would do; write nothing."),
    wait: bool = typer.Option(False, "--wait", help="Follow the worker until it applied them."),
) -> None:
    """Apply R1 to every in-scope accounting row that exists now (snapshot rows included)."""
    from acct2crm import backfill as job
    from acct2crm.errors import Acct2CrmError
    from acct2crm.follow_worker import end_offset, follow_with_progress
    from acct2crm.settings import get_settings
    from acct2crm.task_progress import track
    from acct2crm.views import backfill_table

    settings = get_settings()
    try:
        lsn, rows = job.snapshot_rows(settings)
        planned = job.plan(settings, lsn, rows)
        if dry_run:
            backfill_table(list(job.dry_run(settings, planned.intents)), planned.outcomes)
            return
        start = end_offset(settings, settings.commands_topic)
        with track("backfill: sending rows", len(planned.intents), "rows") as tracker:
            sent = job.send(settings, planned.intents, tracker)
        typer.echo(
            f"{sent} in-scope rows sent to the sink as inserts (R1); "
            f"{len(planned.outcomes)} left alone. Follow with `acct2crm status`."
        )
        if wait and sent:
            end = end_offset(settings, settings.commands_topic)
            follow_with_progress(settings, settings.commands_topic, start, end,
                                 what="backfill: applied by the worker", unit="commands")
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
) -> None:
    """Re-read the change topic from an offset or a time; applied changes write nothing."""
    from acct2crm import replay as job
    from acct2crm.errors import Acct2CrmError
    from acct2crm.follow_worker import end_offset, follow_with_progress
    from acct2crm.settings import get_settings
    from acct2crm.task_progress import track
    from acct2crm.views import replay_table

    if (from_offset is None) == (from_timestamp is None):
        raise _fail(ValueError("give exactly one of --from-offset or --from-timestamp"))
    settings = get_settings()
    try:
        start = job.offset_for(settings, from_offset, from_timestamp)
        end = end_offset(settings, settings.change_topic)
        if dry_run:
            with track("replay (dry run): reading", end - start, "offsets") as tracker:
                previews = list(job.dry_run(settings, start, tracker))
            replay_table(start, previews)
            return
        restarted = _with_worker_stopped(settings, lambda: job.rewind(settings, start))
        typer.echo(
            f"worker rewound to offset {start} of {settings.change_topic}"
            + ("; worker restarted" if restarted else "; start the worker to replay")
        )
        if wait and end > start:
            follow_with_progress(settings, settings.change_topic, start, end,
                                 what="replay: re-read by the worker", unit="offsets")
    except Acct2CrmError as exc:
        raise _fail(exc) from exc



positions_app = typer.Typer(help="The per-row source positions the worker keeps.")
app.add_typer(positions_app, name="positions")


@positions_app.command("rebase")
def positions_rebase(
    before: str | None = typer.Option(
        None, "--before",
        help="Forget positions committed before this time (ISO 8601 or epoch ms); "
        "default: the earliest change held back as a source reset, else all.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan; change nothing."),
) -> None:
    """After a source reset (new cluster, restored backup): forget the old positions,
    record the cluster as the new baseline, re-read the changes held back."""
    from acct2crm import rebase as job
    from acct2crm.errors import Acct2CrmError
    from acct2crm.replay import parse_timestamp
    from acct2crm.settings import get_settings

    settings = get_settings()
    try:
        plan = job.make_plan(settings, parse_timestamp(before) if before else None)
        typer.echo(
            f"{len(plan.forget)} row positions to forget, {plan.keep} kept"
            + (f" (committed before {plan.cutoff_ms} ms)" if plan.cutoff_ms is not None else "")
            + (
                f"; held-back changes re-read from offset {plan.replay_from}"
                if plan.replay_from is not None else "; no held-back change found"
            )
        )
        if dry_run:
            return
        restarted = _with_worker_stopped(settings, lambda: job.apply_rebase(settings, plan))
    except Acct2CrmError as exc:
        raise _fail(exc) from exc
    typer.echo(
        "positions rebased; this cluster is the new baseline"
        + ("; worker restarted" if restarted else "; start the worker")
    )


@app.command()
def status(
    as_json: bool = typer.Option(False, "--json", help="The stable JSON form (docs/contract.md)."),
) -> None:
    """Endpoints, services with their pids, connector state, lag, counts, last failures."""
    from acct2crm import status_report as report
    from acct2crm.settings import get_settings

    found = report.collect(get_settings())
    typer.echo(report.as_json(found) if as_json else report.as_text(found))


from acct2crm.dlq_cli import dlq_app  # noqa: E402 - registered where it is listed

app.add_typer(dlq_app, name="dlq")


@app.command()
def pause(tenant: str = typer.Argument(..., help="Tenant whose CRM writes wait.")) -> None:
    """Hold a tenant's changes in Kafka (as if its CRM were down) until `resume`."""
    from acct2crm import pause as job
    from acct2crm.settings import get_settings

    changed = job.pause(get_settings(), tenant)
    typer.echo(f"tenant {tenant} " + ("paused: its changes wait in Kafka" if changed
                                      else "was already paused"))


@app.command()
def resume(tenant: str = typer.Argument(..., help="Paused tenant.")) -> None:
    """Let a paused tenant's changes go on to the CRM, in order."""
    from acct2crm import pause as job
    from acct2crm.settings import get_settings

    changed = job.resume(get_settings(), tenant)
    typer.echo(f"tenant {tenant} " + ("resumed" if changed else "was not paused"))


config_app = typer.Typer(help="The settings in force and where each comes from.")
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(
    as_json: bool = typer.Option(False, "--json", help="One JSON object, secrets masked."),
) -> None:
    """Every setting's effective value and its source (env, file, default); secrets masked."""
    from acct2crm import config_report
    from acct2crm.settings import get_settings

    found = config_report.collect(get_settings())
    typer.echo(config_report.as_json(found) if as_json else config_report.as_text(found))


connectors_app = typer.Typer(help="Kafka Connect configuration from connectors/.")
app.add_typer(connectors_app, name="connectors")


@connectors_app.command("apply")
def connectors_apply() -> None:
    """Create the project's topics (retention corrected), PUT each connector's config
    (only if it changed), then wait until it runs."""
    from acct2crm import source_watch
    from acct2crm.connect import operations
    from acct2crm.errors import Acct2CrmError
    from acct2crm.settings import get_settings
    from acct2crm.topics import ensure_retention, ensure_topics

    settings = get_settings()
    try:
        created = ensure_topics(settings)
        if created:
            typer.echo(f"topics: created {', '.join(created)}")
        for corrected in ensure_retention(settings):
            typer.echo(f"topics: {corrected}")
        for result in operations.apply(settings):
            typer.echo(f"{result.name}: {result.change}, {result.state.state}")
        reset = source_watch.baseline(settings)
        if reset:
            typer.secho(f"WARNING {reset}", fg=typer.colors.YELLOW, err=True)
    except Acct2CrmError as exc:
        raise _fail(exc) from exc


@connectors_app.command("status")
def connectors_status() -> None:
    """The state of each connector and its tasks, as Kafka Connect reports it."""
    from acct2crm.connect import operations
    from acct2crm.errors import Acct2CrmError
    from acct2crm.settings import get_settings

    try:
        for state in operations.status(get_settings()):
            tasks = ", ".join(f"task {t.get('id')} {t.get('state')}" for t in state.tasks)
            typer.echo(f"{state.name}: {state.state} {tasks}".rstrip())
    except Acct2CrmError as exc:
        raise _fail(exc) from exc


@connectors_app.command("restart")
def connectors_restart() -> None:
    """Restart each connector with its tasks, then wait until they run again."""
    from acct2crm.connect import operations
    from acct2crm.errors import Acct2CrmError
    from acct2crm.settings import get_settings

    try:
        for state in operations.restart(get_settings()):
            typer.echo(f"{state.name}: restarted, {state.state}")
    except Acct2CrmError as exc:
        raise _fail(exc) from exc


def _with_worker_stopped(settings: Settings, action: Callable[[], None]) -> bool:
    """Stop the local stack's worker (if one runs), do ``action``, start it again.

    Without a local stack the operator stops the workers; ``rewind`` refuses
    while the worker group still has members.
    """
    from acct2crm.local_stack import find_local_stack

    stack = find_local_stack()
    stopped = stack is not None and stack.stop_worker(settings)
    action()
    if stack is None or not stopped:
        return False
    stack.start_worker(settings)
    return True


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
