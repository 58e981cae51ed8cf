"""``acct2crm positions rebase``: start the per-row positions over after a source reset."""

from __future__ import annotations

import typer

from acct2crm.commands.common import fail, with_worker_stopped

positions_app = typer.Typer(help="The per-row source positions the worker keeps.")


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
        restarted = with_worker_stopped(settings, lambda: job.apply_rebase(settings, plan))
    except Acct2CrmError as exc:
        raise fail(exc) from exc
    typer.echo(
        "positions rebased; this cluster is the new baseline"
        + ("; worker restarted" if restarted else "; start the worker")
    )
