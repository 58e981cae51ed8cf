"""The worker's consumer long-polls briefly: a drained change partition is fetched again soon."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from acct2crm.app.fetch_wait import FETCH_MAX_WAIT_MS
from acct2crm.app.topology import make_app
from acct2crm.settings import Settings


def test_the_worker_consumer_waits_only_briefly_for_new_records(tmp_path: Path) -> None:
    async def build() -> Any:
        app = make_app(Settings(home=tmp_path))
        thread = app.consumer._thread  # type: ignore[attr-defined]
        return thread._create_worker_consumer(app.transport)

    consumer = asyncio.run(build())
    assert consumer._fetch_max_wait_ms == FETCH_MAX_WAIT_MS < 500


def test_the_worker_producer_gathers_records_sent_together(tmp_path: Path) -> None:
    # a request per record cost the change agent a socket write each (profiled in a replay)
    assert make_app(Settings(home=tmp_path)).conf.producer_linger > 0
