"""Tables people read on the terminal (rich): results, history, previews."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from acct2crm.rules.change import Action
from acct2crm.rules.decide import Outcome, SyncIntent

console = Console()

ACTION_STYLE = {
    "created": "green",
    "updated": "cyan",
    "unchanged": "dim",
    "skipped_duplicate_code": "yellow",
    "ignored_delete": "magenta",
    "ignored_out_of_scope": "dim",
    "ignored_snapshot": "dim",
    "failed": "bold red",
}

OP_WORDS = {"c": "insert", "u": "update", "d": "delete", "r": "snapshot", "t": "truncate",
            "b": "backfill", "?": "?"}


def _action(action: str) -> str:
    style = ACTION_STYLE.get(action, "")
    return f"[{style}]{action}[/]" if style else action


def results_table(
    title: str, records: Sequence[dict[str, Any]], *, change_label: bool = True
) -> None:
    table = Table(title=title, show_lines=False)
    table.add_column("code")
    table.add_column("change" if change_label else "op")
    table.add_column("action")
    table.add_column("reason", overflow="fold")
    table.add_column("crm id", justify="right")
    for r in records:
        table.add_row(
            r.get("code") or "—",
            r.get("label") or OP_WORDS.get(r.get("op") or "?", r.get("op") or "?"),
            _action(r["action"]),
            r.get("reason") or "",
            str(r["crm_id"]) if r.get("crm_id") is not None else "—",
        )
    console.print(table)


def history_table(code: str, records: Sequence[dict[str, Any]]) -> None:
    if not records:
        console.print(f"No result mentions code {code!r} yet.")
        return
    table = Table(title=f"History of {code}")
    # the same code in several companies: say whose each line is
    tenants = len({r.get("tenant") for r in records}) > 1
    for name in ("applied at", *(("tenant",) if tenants else ()), "accounting id", "op",
                 "action", "reason", "crm id"):
        table.add_column(name, overflow="fold")
    for r in records:
        table.add_row(
            str(r.get("applied_at", "")),
            *((str(r.get("tenant")),) if tenants else ()),
            str(r.get("accounting_id") or "—"),
            OP_WORDS.get(r.get("op") or "?", r.get("op") or "?"),
            _action(r["action"]),
            r.get("reason") or "",
            str(r["crm_id"]) if r.get("crm_id") is not None else "—",
        )
    console.print(table)


def crm_table(title: str, items: Sequence[dict[str, Any]]) -> None:
    table = Table(title=title)
    for name in ("id", "code", "name", "phone", "branch", "external_ref", "updated_at"):
        table.add_column(name, overflow="fold")
    for item in items:
        table.add_row(
            str(item.get("id")),
            item.get("code") or "",
            item.get("name") or "",
            item.get("phone") or "",
            item.get("branch_code") or "",
            item.get("external_ref") or "—",
            str(item.get("updated_at") or ""),
        )
    console.print(table)


def backfill_table(
    planned: Sequence[tuple[SyncIntent, Action, str]],
    left: Sequence[tuple[dict[str, Any], Outcome]],
) -> None:
    table = Table(title="Backfill (dry run): nothing was written")
    for name in ("accounting id", "code", "would be", "reason"):
        table.add_column(name, overflow="fold")
    for intent, action, reason in planned:
        table.add_row(str(intent.accounting_id), intent.code, _action(action.value), reason)
    for row, outcome in left:
        table.add_row(str(row.get("id")), str(row.get("code")), _action(outcome.action.value),
                      outcome.reason)
    console.print(table)
    tally = Counter([*(a.value for _, a, _ in planned), *(o.action.value for _, o in left)])
    console.print(summary_line(len(planned) + len(left), "rows", tally), soft_wrap=True,
                  markup=False)


def summary_line(total: int, unit: str, tally: Counter[str]) -> str:
    """One line under a dry run's table: how many, and how many of each outcome."""
    parts = ", ".join(f"{n} {what}" for what, n in sorted(tally.items(), key=lambda i: -i[1]))
    return f"{total} {unit}" + (f": {parts}" if parts else "") + "; nothing was written"


def replay_table(start: int | dict[int, int], previews: Sequence[Any]) -> None:
    """The dry run's table; a partition column when more than partition 0 is re-read."""
    starts = {0: start} if isinstance(start, int) else start
    many = list(starts) != [0]
    where = ", ".join(f"{o} (partition {p})" for p, o in sorted(starts.items()))
    title = f"offsets {where}" if many else f"offset {starts[0]}"
    table = Table(title=f"Replay from {title} (dry run): nothing was moved")
    for name in ("partition", "offset", "op", "code", "would")[0 if many else 1:]:
        table.add_column(name, overflow="fold")
    for p in previews:
        cells = (str(p.offset), OP_WORDS.get(p.op, p.op), p.code or "—", p.would)
        table.add_row(*((str(p.partition), *cells) if many else cells))
    console.print(table)
    # "unchanged: replay ..." counts as unchanged; a change for the sink as "to the sink"
    tally = Counter(p.would.split(":", 1)[0] if ":" in p.would else "to the sink"
                    for p in previews)
    console.print(summary_line(len(previews), "changes", tally), soft_wrap=True, markup=False)
