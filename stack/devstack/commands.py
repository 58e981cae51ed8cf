"""The workbench's commands: ``up``, ``down``, ``demo`` and ``bench``.

They join the ``acct2crm`` CLI through the local-stack entry point, so the
product's own command line never imports the workbench.
"""

from __future__ import annotations

import typer

from acct2crm.errors import Acct2CrmError
from acct2crm.settings import get_settings


def _fail(exc: Exception) -> typer.Exit:
    typer.secho(f"acct2crm: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def up(
    crm_fault_injection: bool = typer.Option(
        False, "--crm-fault-injection", help="Let tests break the reference CRM (/admin/faults)."
    ),
    no_worker: bool = typer.Option(False, "--no-worker", help="Start everything but the worker."),
    only: str | None = typer.Option(
        None, "--only", help="Comma-separated services to start (with what they need), "
        "e.g. postgres,crm.",
    ),
    workers: int = typer.Option(1, "--workers", help="Worker processes in the one group."),
) -> None:
    """Start the local stack (PostgreSQL, Kafka, Connect + Debezium, CRM, worker); idempotent.

    All or nothing: if a service fails, what this call started is stopped again.
    """
    from devstack import lifecycle
    from devstack import workers as extra_workers

    chosen = None if only is None else [name.strip() for name in only.split(",") if name.strip()]
    try:
        lifecycle.up(
            get_settings(), crm_fault_injection=crm_fault_injection, with_worker=not no_worker,
            only=chosen,
        )
        if workers > 1 and not no_worker and chosen is None:
            extra_workers.ensure(get_settings(), workers, echo=typer.echo)
    except Acct2CrmError as exc:
        raise _fail(exc) from exc


def down() -> None:
    """Stop every process the local stack started, by pid, in reverse order; idempotent."""
    from devstack import lifecycle
    from devstack import workers as extra_workers

    try:
        extra_workers.stop_extra(get_settings(), echo=typer.echo)
        lifecycle.down(get_settings())
    except Acct2CrmError as exc:
        raise _fail(exc) from exc


def demo(
    timeout: float = typer.Option(180.0, help="Seconds to wait for the results."),
) -> None:
    """Start the local stack if needed, run scripted accounting changes, show the outcome."""
    from acct2crm.views import console, crm_table, results_table
    from devstack import demo as job
    from devstack import lifecycle

    settings = get_settings()
    try:
        lifecycle.up(settings, echo=lambda line: console.print(f"[dim]{line}[/]"))
        outcome = job.run(settings, echo=console.print, timeout_s=timeout)
    except Acct2CrmError as exc:
        raise _fail(exc) from exc
    results_table(f"Results of demo run {outcome['tag']} (commit order)", outcome["results"])
    crm_table(f"CRM customers of demo run {outcome['tag']}", outcome["crm"])
    missing = outcome["expected"] - len(outcome["results"])
    if missing:
        console.print(
            f"[bold red]{missing} change(s) have no result yet[/]: see `acct2crm status` "
            f"and the worker log under {settings.home / 'logs'}"
        )
        raise typer.Exit(code=1)
    console.print(
        f"Every change has its result. Explore: `acct2crm history {outcome['tag']}-11`, "
        "`acct2crm status`; stop everything with `acct2crm down`."
    )


def bench(
    changes: int = typer.Option(300, help="Inserts at a steady rate (latency)."),
    rate: float = typer.Option(20.0, help="Inserts per second during the latency phase."),
    burst: int = typer.Option(300, help="Inserts committed at once (throughput)."),
    ratios: bool = typer.Option(
        False, "--ratios", help="Each figure against its bound (raw CRM, capture, a 50 calls/s "
        "CRM, raw consume); see devstack/bench_ratios.py."
    ),
    memory: int = typer.Option(
        0, "--memory", help="Only the worker's RSS with this many CRM codes in its table "
        "(rocksdb://, a process of its own; e.g. 1000000). Needs no stack."
    ),
) -> None:
    """Measure commit → CRM latency and drain throughput on the running local stack."""
    from devstack import bench as job

    if memory:
        from devstack import bench_memory

        for line in bench_memory.run(memory):
            typer.echo(line)
        return
    if ratios:
        from devstack import bench_ratios

        for line in bench_ratios.run(get_settings(), burst=burst):
            typer.echo(line)
        return
    for line in job.run(get_settings(), changes, rate, burst).lines():
        typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add the workbench's commands to ``app``."""
    for command in (up, down, demo, bench):
        app.command()(command)
    from devstack.tenant_commands import tenants_app

    app.add_typer(tenants_app, name="tenants")
