"""`acct2crm status` shows what the worker cannot do on its own: lost offsets, stuck sends."""

from __future__ import annotations

from acct2crm.status_report import as_text


def test_lost_offsets_and_waits_are_shown_loudly() -> None:
    lost = ("offsets 3..6 of acct2crm.accounting.customer partition 0 were deleted "
            "(below the log start) before being handled")
    shown = as_text({
        "postgres_dsn": "pg", "kafka_bootstrap": "k", "connect_url": "c", "crm_url": "u",
        "crm_token": "secret-token-1234", "status_url": "s", "services": {},
        "connector": {"state": "RUNNING"}, "lag": 0, "counts": {}, "last_failures": [],
        "sync": {"state": "running", "scope": "all", "lost_offsets": [lost],
                 "kafka_waiting": ["Kafka refused 1 record(s): timeout"],
                 "reading_back": "offsets 1..2 of acct2crm.commands not read back yet",
                 "supervisor": {"restarts": 2, "last_exit_code": -9, "child_pid": None}},
    })
    assert f"LOST       {lost}" in shown
    assert "WAITING for Kafka: Kafka refused 1 record(s)" in shown
    assert "worker     restarted 2 time(s) by its supervisor; last exit code -9; starting " \
        "again soon" in shown
    assert "WAITING to read back offsets 1..2 of acct2crm.commands" in shown


def test_the_text_masks_a_database_password_that_is_not_the_local_stacks() -> None:
    report = {
        "postgres_dsn": "postgresql://acct2crm:tunnel-s3cret@127.0.0.1:6432/accounting",
        "kafka_bootstrap": "k", "connect_url": "c", "crm_url": "u",
        "crm_token": "secret-token-1234", "status_url": "s", "services": {},
        "connector": {"state": "RUNNING"}, "lag": 0, "counts": {}, "last_failures": [],
    }
    shown = as_text(report)
    assert "tunnel-s3cret" not in shown
    assert "postgres   postgresql://acct2crm:****@127.0.0.1:6432/accounting" in shown
    local = "postgresql://acct2crm:acct2crm-local@127.0.0.1:55432/accounting"
    assert f"postgres   {local}" in as_text({**report, "postgres_dsn": local})
