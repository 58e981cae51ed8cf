"""``acct2crm bench --ratios``: the worker on another event loop, side by side.

The worker's loop is a setting (``event_loop``). The local stack starts a
worker with the settings it is handed, as environment variables, so a worker
(re)started with ``on_loop``'s copy runs on that loop, and the next start
with the bench's own settings is back on the configured one. Each figure
says which loop its worker reported on its metrics page, so a restart that
did not take is seen.
"""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from acct2crm.commands.common import with_worker_stopped
from acct2crm.settings import Settings


def on_loop(settings: Settings, loop: str) -> Settings:
    """The same settings, for a worker on ``loop``."""
    return settings.model_copy(update={"event_loop": loop})


def worker_loop(settings: Settings) -> str | None:
    """The event loop the running worker reports on its metrics page (None: not said)."""
    try:
        page = httpx.get(settings.status_url.removesuffix("/status") + "/metrics", timeout=5)
    except httpx.HTTPError:
        return None
    for family in text_string_to_metric_families(page.text):
        for sample in family.samples:
            if sample.name == "acct2crm_worker_info":
                return sample.labels.get("event_loop")
    return None


def restart_worker(settings: Settings) -> None:
    """Stop the local stack's worker and start it again with ``settings``."""
    if not with_worker_stopped(settings, lambda: None):
        raise RuntimeError("no local worker to restart on another event loop")
