"""``acct2crm bench --ratios``: the worker on another event loop, side by side.

The worker's loop is a setting (``event_loop``); a worker the bench starts
inherits the bench's environment, so setting the variable around a restart
runs the next worker on that loop. Each figure says which loop its worker
reported on its metrics page, so a restart that did not take is seen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from prometheus_client.parser import text_string_to_metric_families

from acct2crm.commands.common import with_worker_stopped
from acct2crm.settings import Settings

LOOP_VARIABLE = "ACCT2CRM_EVENT_LOOP"


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


@contextmanager
def next_start_on(loop: str) -> Iterator[None]:
    """Workers started inside run on ``loop``; the variable is put back after."""
    before = os.environ.get(LOOP_VARIABLE)
    os.environ[LOOP_VARIABLE] = loop
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(LOOP_VARIABLE, None)
        else:
            os.environ[LOOP_VARIABLE] = before


def restart_worker(settings: Settings) -> None:
    if not with_worker_stopped(settings, lambda: None):
        raise RuntimeError("no local worker to restart on another event loop")
