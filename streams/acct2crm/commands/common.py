"""What every command module shares: the one-line failure and the worker pause around a rewind."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from acct2crm.settings import Settings


def fail(exc: Exception) -> typer.Exit:
    """Say ``exc`` in one red line; the exit to raise."""
    typer.secho(f"acct2crm: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def with_worker_stopped(settings: Settings, action: Callable[[], None]) -> bool:
    """Stop the local stack's workers (if any run), do ``action``, start them again, even
    when ``action`` fails.

    Without a local stack the operator stops the workers; ``rewind`` refuses
    while the worker group still has members.
    """
    from acct2crm.local_stack import find_local_stack

    stack = find_local_stack()
    stopped = stack is not None and stack.stop_worker(settings)
    try:
        action()
    finally:  # a refused rewind must not leave the stack without its workers
        if stack is not None and stopped:
            stack.start_worker(settings)
    return stack is not None and stopped
