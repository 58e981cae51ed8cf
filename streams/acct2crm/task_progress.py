"""Progress of long work (backfill, replay, the local stack's start): done / total, rate, ETA.

On a terminal it is a rich progress bar on stderr; otherwise (CI, a pipe, a
log file) plain lines at most every few seconds and one at the end, so logs
stay readable. Work that does not know its total yet passes ``None``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

PLAIN_EVERY_S = 2.0


class Tracker(Protocol):
    def advance(self, n: int = 1) -> None: ...

    def update(self, *, completed: int | None = None, total: int | None = None,
               note: str | None = None) -> None: ...


def rate_text(done: int, elapsed_s: float, unit: str) -> str:
    return f"{done / elapsed_s:,.0f} {unit}/s" if elapsed_s > 0 and done else f"- {unit}/s"


def eta_text(done: int, total: int | None, elapsed_s: float) -> str:
    if total is None or done <= 0 or elapsed_s <= 0:
        return "ETA ?"
    left = max(0.0, (total - done) * elapsed_s / done)
    return f"ETA {int(left) // 60}:{int(left) % 60:02d}"


def plain_line(description: str, done: int, total: int | None, elapsed_s: float, *, unit: str,
               note: str = "") -> str:
    """One progress line for logs: ``backfill: 500/2,000 rows (25%), 120 rows/s, ETA 0:12``."""
    share = f" ({100 * done // total}%)" if total else ""
    of = f"{done:,}/{total:,}" if total is not None else f"{done:,}"
    tail = f"; {note}" if note else ""
    return (f"{description}: {of} {unit}{share}, {rate_text(done, elapsed_s, unit)}, "
            f"{eta_text(done, total, elapsed_s)}{tail}")


class _Plain:
    def __init__(self, description: str, total: int | None, unit: str, stream: TextIO) -> None:
        self.description, self.total, self.unit, self.stream = description, total, unit, stream
        self.done = 0
        self.note = ""
        self.started = time.monotonic()
        self.printed = self.started
        self.last_line = ""

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._maybe_print()

    def update(self, *, completed: int | None = None, total: int | None = None,
               note: str | None = None) -> None:
        if completed is not None:
            self.done = completed
        if total is not None:
            self.total = total
        if note is not None:
            self.note = note
        self._maybe_print()

    def _maybe_print(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.printed >= PLAIN_EVERY_S:
            self.printed = now
            line = plain_line(self.description, self.done, self.total, now - self.started,
                              unit=self.unit, note=self.note)
            if force and line.split(",")[0] == self.last_line.split(",")[0]:
                return  # the end, already said
            self.last_line = line
            print(line, file=self.stream, flush=True)


class _RateColumn(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {self.unit}/s" if speed else f"- {self.unit}/s")


class _Rich:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress, self.task = progress, task

    def advance(self, n: int = 1) -> None:
        self.progress.advance(self.task, n)

    def update(self, *, completed: int | None = None, total: int | None = None,
               note: str | None = None) -> None:
        if note is None:
            self.progress.update(self.task, completed=completed, total=total)
        else:
            self.progress.update(self.task, completed=completed, total=total, note=note)


@contextmanager
def track(description: str, total: int | None, unit: str, *, stream: TextIO | None = None
          ) -> Iterator[Tracker]:
    """A tracker for one piece of long work; rich on a terminal, plain lines elsewhere."""
    out = stream if stream is not None else sys.stderr
    if not out.isatty():
        plain = _Plain(description, total, unit, out)
        try:
            yield plain
        finally:
            plain._maybe_print(force=True)
        return
    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn(unit), _RateColumn(unit), TimeRemainingColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
    )
    with Progress(*columns, console=Console(file=out)) as progress:
        task = progress.add_task(description, total=total, note="")
        yield _Rich(progress, task)
