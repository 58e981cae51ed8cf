"""The worker's logs: one JSON line per change at debug, and no customer's private data.

The conftest runs the stack's worker with ``log_format = "json"`` and
``log_level = "debug"``, the most it ever logs. This file sorts after the
other integration tests of the directory, so the logs it reads hold their
whole run: every name, phone and email the CRM was sent (it keeps them all)
and the CRM token are looked for in the worker's and the CRM's logs.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from acct2crm.settings import Settings
from tests.support.sync import Pipeline, unique_tag

pytestmark = pytest.mark.integration

PRIVATE_FIELDS = ("name", "phone", "email", "contact_name")
MIN_LENGTH = 6  # shorter values (e.g. "Sales") are words any log may hold


def stack_logs(settings: Settings) -> dict[str, str]:
    folder = settings.home / "logs"
    return {p.name: p.read_text(errors="replace") for p in sorted(Path(folder).glob("*.log"))
            if p.name.startswith(("worker", "crm"))}


def change_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if '"acct2crm.changes"' in line:
            lines.append(json.loads(line))
    return lines


def test_one_json_line_per_change_and_nothing_private(stack_settings: Settings) -> None:
    pipe = Pipeline.start(stack_settings)
    tag = unique_tag("L")
    private = {
        "name": f"Privat Nguyen {tag}",
        "phone": f"09{secrets.randbelow(10**8):08d}",
        "email": f"{tag.lower()}@private.example",
        "contact_name": f"Contact Tran {tag}",
    }
    good = pipe.insert(f"{tag}-A", **private)
    bad = pipe.insert(f"{tag}-B", tax_code="12", **{**private, "email": f"b.{private['email']}"})
    pipe.update(good, phone=f"{private['phone']}1")
    pipe.results([good, bad], 3)
    logs = stack_logs(stack_settings)
    assert set(logs) >= {"worker.log", "crm.log"}

    # every change: a JSON line with tenant, offset, code and action, and nothing more of it
    deadline = time.monotonic() + 20
    while True:
        mine = [line for line in change_lines(logs["worker.log"])
                if str(line.get("code", "")).startswith(tag)]
        finals = {(line["code"], line["action"]) for line in mine if line["action"] != "to_crm"}
        if len(finals) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(1)
        logs = stack_logs(stack_settings)
    assert finals >= {(f"{tag}-A", "created"), (f"{tag}-A", "updated"), (f"{tag}-B", "failed")}
    for line in mine:
        assert line["tenant"] == "default" and isinstance(line["offset"], int)
        assert line["level"] == "debug"
        assert set(line) == {"ts", "level", "logger", "message", "tenant", "offset", "code",
                             "action"}
    # every line of the worker's log is JSON, its supervisor's included
    lines = [raw for raw in logs["worker.log"].splitlines() if raw.strip()]
    assert len(lines) > len(mine)
    for raw in lines:
        assert isinstance(json.loads(raw), dict), raw

    # nothing private, from this test or any other the CRM was sent in this run
    looked_for = {stack_settings.crm_token.get_secret_value(), *private.values()}
    for record in pipe.crm_all():
        looked_for |= {str(record[f]) for f in PRIVATE_FIELDS if record.get(f)}
    looked_for = {v for v in looked_for if len(v) >= MIN_LENGTH}
    assert len(looked_for) > len(private)
    leaks = {(name, value) for name, text in logs.items() for value in looked_for
             if value in text}
    pipe.close()
    assert not leaks
    # nor the databases' passwords, in any log of the stack (Connect's and Kafka's too)
    passwords = {stack_settings.pg_password.get_secret_value(),
                 stack_settings.pg_replication_password.get_secret_value()}
    every_log = sorted((stack_settings.home / "logs").glob("*.log"))
    assert {p.name for p in every_log} >= {"worker.log", "crm.log", "connect.log", "kafka.log"}
    assert not {(p.name, v) for p in every_log for v in passwords
                if v in p.read_text(errors="replace")}
