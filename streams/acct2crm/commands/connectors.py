"""``acct2crm connectors apply|status|restart``: Kafka Connect from the templates."""

from __future__ import annotations

import typer

from acct2crm.commands.common import fail

connectors_app = typer.Typer(help="Kafka Connect configuration from connectors/.")


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
        raise fail(exc) from exc


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
        raise fail(exc) from exc


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
        raise fail(exc) from exc
