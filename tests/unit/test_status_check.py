"""`status` lists what needs the operator; `status --check` exits 1 on it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from typer.testing import CliRunner

from acct2crm import cli, status_report
from acct2crm.status_check import problems
from acct2crm.status_report import as_text

RUNNING = {"state": "running", "pid": 1}


def healthy() -> dict[str, Any]:
    """A report of a local stack where everything runs and nothing waits."""
    return {
        "postgres_dsn": "pg", "kafka_bootstrap": "k", "connect_url": "c", "crm_url": "u",
        "crm_token": "secret-token-1234", "status_url": "s",
        "services": {name: dict(RUNNING) for name in
                     ("postgres", "kafka", "connect", "crm", "worker")},
        "connector": {"name": "c0", "state": "RUNNING", "tasks": [{"id": 0, "state": "RUNNING"}]},
        "connectors": [
            {"tenant": "default", "name": "c0", "state": "RUNNING",
             "tasks": [{"id": 0, "state": "RUNNING"}]},
            {"tenant": "acme", "name": "c1", "state": "RUNNING",
             "tasks": [{"id": 0, "state": "RUNNING"}]},
        ],
        "lag": 3, "counts": {"created": 2, "failed": 1},
        "last_failures": [{"code": "BAD", "applied_at": "t", "reason": "422 tax_code"}],
        "sync": {"state": "running", "scope": "all", "paused": {"acme": 1.0},
                 "kafka_waiting": [], "lost_offsets": [], "scope_error": None,
                 "mapping_error": None},
        "source": {}, "warnings": [], "kafka_error": None,
        "workers": [dict(RUNNING), dict(RUNNING)],
        "tenants": {"default": {"lag": 3, "counts": {}, "sync": {"state": "running"}},
                    "acme": {"lag": 0, "counts": {}, "sync": {"state": "paused"}}},
    }


def test_a_healthy_stack_has_no_problem_though_a_row_failed_and_a_tenant_is_paused() -> None:
    report = healthy()
    assert problems(report) == []
    report["problems"] = []
    assert as_text(report).endswith("health     ok")


def _set(report: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        report = report[int(part)] if isinstance(report, list) else report[part]
    if isinstance(report, list):
        report[int(last)] = value
    else:
        report[last] = value


@pytest.mark.parametrize(("path", "value", "expected"), [
    ("kafka_error", "SASL authentication failed", ["kafka: SASL authentication failed"]),
    ("services.crm.state", "stopped", ["crm is stopped"]),
    ("workers.1.state", "unhealthy", ["worker 2 is unhealthy"]),
    ("connectors.1.state", "FAILED", ["connector c1 is FAILED"]),
    ("connectors.0.tasks.0.state", "FAILED", ["connector c0 task 0 is FAILED"]),
    ("tenants.default.sync", {"state": "waiting_for_crm", "waiting_reason": "CRM answered 503"},
     ["tenant default waits for its CRM: CRM answered 503"]),
    ("sync.kafka_waiting", ["Kafka refused 2 record(s)"],
     ["sync waits for Kafka: Kafka refused 2 record(s)"]),
    ("sync.lost_offsets", ["offsets 3..6 were deleted"], ["lost: offsets 3..6 were deleted"]),
    ("sync.scope_error", "line 2: bad", ["scope file error (previous scope kept): line 2: bad"]),
    ("sync.mapping_error", "no such field",
     ["mapping file error (previous mapping kept): no such field"]),
    ("warnings", ["the replication slot is lost"], ["warning: the replication slot is lost"]),
])
def test_each_kind_of_trouble_is_one_problem(path: str, value: Any, expected: list[str]) -> None:
    report = healthy()
    _set(report, path, copy.deepcopy(value))
    assert problems(report) == expected


def test_the_first_worker_is_counted_once_and_a_wait_once() -> None:
    report = healthy()
    report["services"]["worker"]["state"] = "stopped"
    report["workers"][0]["state"] = "stopped"
    assert problems(report) == ["worker is stopped"]
    report = healthy()
    wait = {"state": "waiting_for_crm", "waiting_reason": "timeout"}
    report["sync"] |= wait
    report["tenants"]["default"]["sync"] = dict(wait)
    assert problems(report) == ["tenant default waits for its CRM: timeout"]
    report["tenants"] = {}  # a worker reached without the tenants' view
    assert problems(report) == ["sync waits for the CRM: timeout"]


@pytest.mark.parametrize(("trouble", "args", "code"), [
    (False, ["status"], 0), (True, ["status"], 0),
    (False, ["status", "--check"], 0), (True, ["status", "--check"], 1),
    (True, ["status", "--json", "--check"], 1),
])
def test_only_check_turns_problems_into_an_exit_code(
    monkeypatch: pytest.MonkeyPatch, trouble: bool, args: list[str], code: int,
) -> None:
    report = healthy()
    if trouble:
        report["kafka_error"] = "no answer from 127.0.0.1:1 within 5s"
    report["problems"] = problems(report)
    monkeypatch.setattr(status_report, "collect", lambda settings: report)
    done = CliRunner().invoke(cli.app, args)
    assert done.exit_code == code, done.output
    assert ("kafka: no answer" in done.output) is trouble


def test_with_several_workers_the_seeding_shown_is_the_one_holding_the_partition() -> None:
    """Worker 1 said 'not_started' for a table worker 2 had seeded long ago."""
    bodies: list[dict[str, Any]] = [{"seeding": {"state": "not_started", "records": 0}},
              {"seeding": {"state": "done", "records": 50_000}}, {"state": "running"}]
    assert status_report.furthest_seeding(bodies) == {"state": "done", "records": 50_000}
    bodies[1]["seeding"] = {"state": "seeding", "records": 700}
    assert status_report.furthest_seeding(bodies) == {"state": "seeding", "records": 700}
    assert status_report.furthest_seeding([{"state": "running"}]) is None
