"""The worker's web server serves its own pages (status, history, metrics) and nothing else.

Faust's built-in pages answered customer records by key (``/table/...``),
the partition map (``/router/``) and an index, without authentication.
"""

from __future__ import annotations

import httpx
import pytest

from acct2crm.settings import Settings

pytestmark = pytest.mark.integration

FAUST_PAGES = [
    "/table/",
    "/table/code_to_customer/",
    "/table/code_to_customer/default%1Fkh001/",
    "/table/row_to_position/",
    "/table/topic_offsets/",
    "/router/",
    "/router/code_to_customer/",
    "/graph/",
    "/stats/",
    "/assignments/",
    "/performance/",
]


def test_only_our_own_pages_are_served(stack_settings: Settings) -> None:
    base = stack_settings.status_url.removesuffix("/status")
    with httpx.Client(base_url=base, timeout=5.0) as web:
        status = web.get("/status")
        assert status.status_code == 200
        assert status.json()["state"] in ("running", "waiting_for_crm")
        page = web.get("/")  # ours: the status page people look at
        assert page.status_code == 200 and "<h1>acct2crm</h1>" in page.text
        assert web.get("/metrics").status_code == 200
        served = {path: web.get(path).status_code for path in FAUST_PAGES}
    assert served == dict.fromkeys(FAUST_PAGES, 404)
