"""``acct2crm demo``: the whole product in one command, on the local stack.

Brings the stack and the worker up, lets "sales" create one customer in the
CRM, makes a scripted series of accounting changes (one transaction each,
covering R1a, R1b, R2a, R2b, R2c, R3, an out-of-scope row and a no-op edit),
waits for their results and prints them with the CRM's resulting list.
Codes carry a per-run tag so the demo can be run again on the same stack.
"""

from __future__ import annotations

import string
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from confluent_kafka import TopicPartition

from acct2crm.errors import StackError
from acct2crm.kafka_io import consumer
from acct2crm.records.avro import result_type
from acct2crm.records.convert import result_as_json
from acct2crm.settings import Settings

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Step:
    label: str  # what the accountant did, in words
    rule: str  # the rule it shows
    sql: str
    params: tuple[Any, ...]
    row: str  # which of the demo's rows it changes


def run_tag(now: float | None = None) -> str:
    """A short tag unique per run (base 36 of the time), e.g. ``D4K9Q``."""
    n = int(now if now is not None else time.time())
    digits = string.digits + string.ascii_uppercase
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return "D" + out[-5:]


def script(tag: str) -> list[Step]:
    """The accountant's changes; ``row`` names the row each one touches (a, b, c)."""
    nfd_name = unicodedata.normalize("NFD", "Công ty TNHH Ánh Dương")
    insert = "INSERT INTO accounting.customer ({}) VALUES ({}) RETURNING id"
    return [
        Step(f"insert {tag}-01 (name typed in NFD)", "R1a",
             insert.format("code, name, phone, branch_code", "%s, %s, %s, 'HQ'"),
             (f"{tag}-01", nfd_name, "0241234567"), "a"),
        Step(f"insert {tag.lower()}-02 (sales already has {tag}-02)", "R1b",
             insert.format("code, name, branch_code", "%s, %s, 'HN'"),
             (f" {tag.lower()}-02 ", "Cửa hàng Hoa Mai"), "b"),
        Step(f"edit phone of {tag}-01", "R2a",
             "UPDATE accounting.customer SET phone = %s, updated_at = now() WHERE id = {a}",
             ("0909000111",), "a"),
        Step(f"rename {tag}-01 → {tag}-11", "R2b",
             "UPDATE accounting.customer SET code = %s, updated_at = now() WHERE id = {a}",
             (f"{tag}-11",), "a"),
        Step(f"insert {tag}-03 as a vendor only", "R5 (out of scope)",
             insert.format("code, name, is_customer, is_vendor", "%s, %s, false, true"),
             (f"{tag}-03", "Nhà cung cấp Bình Minh"), "c"),
        Step(f"make {tag}-03 a customer too", "R2c",
             "UPDATE accounting.customer SET is_customer = true, updated_at = now() "
             "WHERE id = {c}", (), "c"),
        Step(f"touch {tag}-11 (updated_at only)", "no-op",
             "UPDATE accounting.customer SET updated_at = now() WHERE id = {a}", (), "a"),
        Step(f"delete {tag}-03", "R3", "DELETE FROM accounting.customer WHERE id = {c}", (), "c"),
    ]


def _crm(settings: Settings) -> httpx.Client:
    return httpx.Client(
        base_url=settings.crm_url,
        headers={"Authorization": f"Bearer {settings.crm_token.get_secret_value()}"},
        timeout=10.0,
    )


def _results_end(settings: Settings) -> int:
    c = consumer(settings, "acct2crm-demo")
    try:
        _, high = c.get_watermark_offsets(TopicPartition(settings.results_topic, 0), timeout=10)
        return int(high)
    finally:
        c.close()


def wait_for_results(
    settings: Settings, start: int, ids: set[int], expected: int, timeout_s: float
) -> list[dict[str, Any]]:
    """Results about ``ids`` published after offset ``start``, until ``expected`` arrive."""
    c = consumer(settings, "acct2crm-demo")
    found: dict[tuple[int, int], dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    try:
        c.assign([TopicPartition(settings.results_topic, 0, start)])
        while len(found) < expected and time.monotonic() < deadline:
            message = c.poll(1.0)
            if message is None or message.error():
                continue
            record = result_as_json(result_type().decode(message.value() or b""))
            if record.get("accounting_id") in ids:
                # a change redelivered to the worker has a second result: count changes
                change = (record["accounting_id"], (record.get("source") or {}).get("lsn") or 0)
                found.setdefault(change, record)
    finally:
        c.close()
    return list(found.values())


def run(settings: Settings, echo: Echo = print, timeout_s: float = 180.0) -> dict[str, Any]:
    """Run the scripted changes; the results in commit order and the CRM's list."""
    tag = run_tag()
    with _crm(settings) as crm:
        reply = crm.post(
            "/api/customers",
            json={"code": f"{tag}-02", "name": "Khách của phòng kinh doanh",
                  "phone": "0988777666", "branch_code": "HN"},
        )
        if reply.status_code != 201:
            raise StackError(f"the CRM refused the sales record: {reply.status_code}")
        echo(f"sales created {tag}-02 directly in the CRM (id {reply.json()['id']})")
    start = _results_end(settings)
    steps = script(tag)
    ids: dict[str, int] = {}
    with psycopg.connect(settings.postgres_conninfo(), autocommit=True) as conn:
        for step in steps:  # one transaction each: autocommit
            cursor = conn.execute(step.sql.format(**ids), step.params)
            if cursor.description:
                returned = cursor.fetchone()
                assert returned is not None
                ids[step.row] = int(returned[0])
            echo(f"accounting: {step.label}")
    results = wait_for_results(settings, start, set(ids.values()), len(steps), timeout_s)
    label_results(steps, results, ids)
    with _crm(settings) as crm:
        items = [
            item
            for page in _pages(crm)
            for item in page
            if str(item.get("code", "")).upper().startswith(tag)
        ]
    return {"tag": tag, "results": results, "expected": len(steps), "crm": items}


def label_results(
    steps: list[Step], results: list[dict[str, Any]], ids: dict[str, int]
) -> None:
    """Pair each result with the step that caused it: same row, same commit order."""
    results.sort(key=lambda r: (r.get("source") or {}).get("lsn") or 0)
    pending: dict[int, list[Step]] = {}
    for step in steps:
        pending.setdefault(ids[step.row], []).append(step)
    for record in results:
        queue = pending.get(record.get("accounting_id") or -1)
        if queue:
            step = queue.pop(0)
            record["label"] = f"{step.rule}: {step.label}"


def _pages(crm: httpx.Client) -> Any:
    page: int | None = 1
    while page is not None:
        body = crm.get("/api/customers", params={"page": page, "page_size": 500}).json()
        yield body.get("items", [])
        page = body.get("next_page")
