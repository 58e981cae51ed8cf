"""The status page and a code's history as plain HTML: server-rendered, refreshing itself.

Pure functions of what the worker knows; no script, no front-end build.
Everything shown is escaped: results quote customer codes and the CRM's
reasons, which carry data typed by people.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

REFRESH_S = 5
STATE_WORDS = {
    "running": "Running",
    "waiting_for_crm": "Waiting for the CRM",
    "paused": "Paused",
    # with several workers: its partition is another worker's; that worker's page has it
    "elsewhere": "On another worker",
}
# always shown, 0 or not; any other action once it happens (names as results carry them)
ACTIONS = ("created", "updated", "unchanged", "skipped_duplicate_code", "failed")

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d2330;background:#f6f7f9}
h1{font-size:1.4rem;margin:0 0 .2rem} h2{font-size:1.15rem;margin:0 0 .5rem}
.muted{color:#667} section{background:#fff;border:1px solid #dde;border-radius:8px;
padding:1rem;margin:1rem 0} table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eef;vertical-align:top}
.state{display:inline-block;padding:.15rem .6rem;border-radius:1rem;font-weight:600}
.running{background:#d8f5df;color:#14532d} .waiting_for_crm{background:#fde7c7;color:#7a3e00}
.paused,.elsewhere{background:#e2e4ea;color:#333} .bad{background:#fbd5d5;color:#7f1d1d}
.counts span{display:inline-block;margin-right:1.2rem} .counts b{font-size:1.2rem}
"""


@dataclass(frozen=True)
class TenantView:
    tenant: str
    state: str  # running | waiting_for_crm | paused
    waiting_reason: str | None = None
    waiting_since: float | None = None
    lag: dict[str, int | None] = field(default_factory=dict)  # "topic[partition]" -> messages
    counts_today: dict[str, int] = field(default_factory=dict)
    counting_since: float | None = None
    failures: Sequence[dict[str, Any]] = ()
    lane: Mapping[str, Any] | None = None  # its commands held in its lane (lanes.status())


@dataclass(frozen=True)
class ConnectorView:
    name: str | None
    state: str
    tasks: Sequence[tuple[str, str]] = ()
    error: str | None = None
    tenant: str | None = None  # whose connector (one per tenant)


def _clock(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return ""
    seconds = max(0, int(now - ts))
    if seconds < 120:
        return f"{seconds} s"
    return f"{seconds // 60} min" if seconds < 7200 else f"{seconds // 3600} h"


def history_link(code: str, tenant: str) -> str:
    return f"/history/{quote(code, safe='')}?tenant={quote(tenant, safe='')}"


def _page(title: str, body: str, refresh_s: int | None) -> str:
    refresh = f'<meta http-equiv="refresh" content="{refresh_s}">' if refresh_s else ""
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"{refresh}<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _state_line(view: TenantView, now: float) -> str:
    word = STATE_WORDS.get(view.state, view.state)
    line = f'<span class="state {escape(view.state)}" id="state-{escape(view.tenant)}">' \
           f"{escape(word)}</span>"
    if view.state == "elsewhere":
        line += (' <span class="why">this worker does not hold its partition now; what it '
                 "shows below is what it saw while it did</span>")
    if view.state == "waiting_for_crm":
        line += (
            f' <span class="why">since {escape(_clock(view.waiting_since))}'
            f" ({escape(_ago(view.waiting_since, now))}): "
            f"{escape(view.waiting_reason or 'unknown')}</span>"
        )
    return f"<p>{line}</p>"


def _lag(view: TenantView) -> str:
    if not view.lag:
        return '<p class="lag">Lag: <span class="muted">not known yet</span></p>'
    parts = [
        f"{escape(where)}: <b>{'?' if n is None else n}</b>"
        for where, n in sorted(view.lag.items())
    ]
    total = sum(n for n in view.lag.values() if n is not None)
    return f'<p class="lag">Lag: <b class="lag-total">{total}</b> ({", ".join(parts)})</p>'


def _counts(view: TenantView) -> str:
    actions = [*ACTIONS, *sorted(set(view.counts_today) - set(ACTIONS))]
    spans = "".join(
        f'<span class="count" data-action="{escape(a)}"><b>{view.counts_today.get(a, 0)}</b> '
        f"{escape(a)}</span>"
        for a in actions
    )
    since = escape(_clock(view.counting_since))
    return f'<p class="counts">Today (since {since}): {spans}</p>'


def _failures(view: TenantView, now: float) -> str:
    if not view.failures:
        return '<p class="failures muted">No failures.</p>'
    rows = []
    for item in reversed(view.failures):
        code = item.get("code")
        shown = escape(str(code)) if code else '<span class="muted">(no code)</span>'
        if code:
            shown = f'<a href="{escape(history_link(str(code), view.tenant))}">{shown}</a>'
        at = (item.get("applied_at") or 0) / 1000.0 or None
        rows.append(
            f"<tr><td>{escape(_clock(at))}</td><td>{shown}</td>"
            f"<td>{escape(str(item.get('accounting_id') or ''))}</td>"
            f"<td>{escape(str(item.get('op') or ''))}</td>"
            f'<td class="reason">{escape(str(item.get("reason") or ""))}</td></tr>'
        )
    return (
        '<h3>Last failures</h3><table class="failures"><tr><th>When</th><th>Code</th>'
        "<th>Row</th><th>Op</th><th>Reason</th></tr>" + "".join(rows) + "</table>"
    )


def _lane(view: TenantView) -> str:
    """How many of the tenant's commands wait in its lane, since when, and why."""
    lane = view.lane or {}
    held = int(lane.get("queued") or 0) + int(lane.get("spilled") or 0)
    if not held:
        return '<p class="lane muted">Lane: no command waiting.</p>'
    age = lane.get("oldest_waiting_s")
    why = lane.get("waiting_reason") or lane.get("state") or ""
    return (
        f'<p class="lane">Lane: <b class="lane-queued">{held}</b> command(s) waiting'
        + (f", the oldest for {float(age):.0f} s" if age is not None else "")
        + f' <span class="why">({escape(str(why))})</span></p>'
    )


def _tenant(view: TenantView, now: float) -> str:
    return (
        f'<section class="tenant" data-tenant="{escape(view.tenant)}" '
        f'data-state="{escape(view.state)}"><h2>Tenant {escape(view.tenant)}</h2>'
        + _state_line(view, now) + _lag(view) + _lane(view) + _counts(view)
        + _failures(view, now)
        + "</section>"
    )


def _connector(view: ConnectorView) -> str:
    good = view.state == "RUNNING" and all(state == "RUNNING" for _, state in view.tasks)
    tasks = ", ".join(f"task {escape(t)}: {escape(s)}" for t, s in view.tasks) or "no task"
    error = f' <span class="muted">{escape(view.error)}</span>' if view.error else ""
    tenant = f' data-tenant="{escape(view.tenant)}"' if view.tenant else ""
    return (
        f'<section class="connector" data-state="{escape(view.state)}"{tenant}><h2>Connector '
        f"{escape(view.name or '')}</h2><p><span class=\"state {'running' if good else 'bad'}\">"
        f"{escape(view.state)}</span> {tasks}{error}</p></section>"
    )


def render_status(
    tenants: Sequence[TenantView],
    connector: ConnectorView | Sequence[ConnectorView],
    *,
    now: float | None = None,
    refresh_s: int = REFRESH_S,
) -> str:
    now = time.time() if now is None else now
    body = (
        "<h1>acct2crm</h1>"
        f'<p class="muted">Accounting to CRM sync. {escape(_clock(now))}; '
        f"this page refreshes every {refresh_s} s. "
        '<a href="/metrics">metrics</a> · <a href="/status">JSON</a></p>'
        + "".join(_tenant(view, now) for view in tenants)
        + "".join(_connector(view) for view in (
            [connector] if isinstance(connector, ConnectorView) else connector))
    )
    return _page("acct2crm status", body, refresh_s)


def render_history(code: str, by_tenant: Mapping[str, Sequence[dict[str, Any]]]) -> str:
    """The results the worker holds for one code, newest first, per tenant."""
    parts = [f"<h1>History of {escape(code)}</h1>",
             '<p class="muted">The results this worker saw lately; the full history: '
             f"<code>acct2crm history {escape(code)}</code>. "
             '<a href="/">back to the status page</a></p>']
    for tenant, results in by_tenant.items():
        rows = "".join(
            f"<tr><td>{escape(_clock((r.get('applied_at') or 0) / 1000.0 or None))}</td>"
            f"<td>{escape(str(r.get('action') or ''))}</td>"
            f"<td>{escape(str(r.get('op') or ''))}</td>"
            f"<td>{escape(str(r.get('accounting_id') or ''))}</td>"
            f"<td>{escape(str(r.get('crm_id') or ''))}</td>"
            f"<td class=\"reason\">{escape(str(r.get('reason') or ''))}</td></tr>"
            for r in reversed(results)
        )
        if not rows:
            rows = '<tr><td colspan="6" class="muted">nothing seen lately</td></tr>'
        parts.append(
            f'<section class="history" data-tenant="{escape(tenant)}"><h2>Tenant '
            f"{escape(tenant)}</h2><table><tr><th>When</th><th>Action</th><th>Op</th>"
            f"<th>Row</th><th>CRM id</th><th>Reason</th></tr>{rows}</table></section>"
        )
    return _page(f"acct2crm history {code}", "".join(parts), None)
