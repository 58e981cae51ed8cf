"""Commands sent from outside the worker (backfill, re-drive) go to their tenant's partition.

With ``change_partitions`` > 1 the producer's own choice (a hash of the row id)
would scatter one tenant's commands over every partition: other lanes, other
table partitions, and no order between them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from acct2crm import backfill, dlq
from acct2crm.errors import ConfigError
from acct2crm.records.avro import command_type
from acct2crm.rules.decide import SyncIntent, classify
from acct2crm.rules.scope import DEFAULT_SCOPE
from acct2crm.settings import Settings
from acct2crm.topic_partitions import commands_partition, partition_of
from tests.support.changes import change, row

PARTITIONS = 4


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def produce(self, topic: str, **kwargs: Any) -> None:
        self.sent.append({"topic": topic, **kwargs})

    def poll(self, _timeout: float) -> int:
        return 0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings(home=tmp_path, crm_token="default-secret", change_partitions=PARTITIONS)
    s.effective_tenants_file.parent.mkdir(parents=True, exist_ok=True)
    entries = []
    for tenant in ("acme", "kw3"):
        secret = tmp_path / f"{tenant}.token"
        secret.write_text(f"{tenant}-secret\n")
        entries.append(f'[tenants.{tenant}]\ncrm_token_file = "{secret}"\n')
    s.effective_tenants_file.write_text("".join(entries))
    return s


@pytest.fixture
def producer(monkeypatch: pytest.MonkeyPatch) -> RecordingProducer:
    recording = RecordingProducer()
    for module in (backfill, dlq):
        monkeypatch.setattr(module, "producer", lambda _settings: recording)
        monkeypatch.setattr(module, "flush", lambda _p: None)
    monkeypatch.setattr(dlq, "_ensure_redriven_topic", lambda _settings: None)
    return recording


def inserts(tenant: str, ids: range) -> list[SyncIntent]:
    out = []
    for n in ids:
        found = classify(change("c", after=row(n, f"K{n}"), tenant=tenant), DEFAULT_SCOPE)
        assert isinstance(found, SyncIntent)
        out.append(found)
    return out


def test_each_tenant_has_its_database_partition(settings: Settings) -> None:
    assert commands_partition(settings, "default") == partition_of("accounting", PARTITIONS)
    assert commands_partition(settings, "acme") == partition_of("accounting_acme", PARTITIONS)
    # the fixture's tenants are not all in one partition, or this file would prove nothing
    assert len({commands_partition(settings, t) for t in ("default", "acme", "kw3")}) > 1
    with pytest.raises(ConfigError, match="gone"):
        commands_partition(settings, "gone")


def test_backfill_sends_every_command_to_its_tenant_partition(
    settings: Settings, producer: RecordingProducer,
) -> None:
    intents = inserts("default", range(1, 41)) + inserts("acme", range(1, 41))
    assert backfill.send(settings, intents) == 80
    by_tenant: dict[str, set[int]] = {}
    for sent in producer.sent:
        tenant = command_type().decode(sent["value"])["tenant"]
        by_tenant.setdefault(tenant, set()).add(sent["partition"])
    assert by_tenant == {"default": {commands_partition(settings, "default")},
                         "acme": {commands_partition(settings, "acme")}}
    # and in row order within the tenant
    ids = [command_type().decode(s["value"])["accounting_id"] for s in producer.sent[:40]]
    assert ids == list(range(1, 41))


def test_a_redrive_goes_to_the_letter_tenant_partition(
    settings: Settings, producer: RecordingProducer,
) -> None:
    planned = [
        dlq.Redrive(letter=_letter(n, tenant), what="sent", intent=intent)
        for n, (tenant, intent) in enumerate(
            [("kw3", i) for i in inserts("kw3", range(1, 4))]
            + [("default", i) for i in inserts("default", range(4, 6))])
    ]
    assert len(dlq.send(settings, planned)) == 5
    commands = [s for s in producer.sent if s["topic"] == settings.commands_topic]
    assert [c["partition"] for c in commands] == (
        [commands_partition(settings, "kw3")] * 3 + [commands_partition(settings, "default")] * 2)


def test_a_redrive_of_an_unknown_tenant_sends_nothing(
    settings: Settings, producer: RecordingProducer,
) -> None:
    planned = [dlq.Redrive(letter=_letter(0, "default"), what="sent",
                           intent=inserts("default", range(1, 2))[0]),
               dlq.Redrive(letter=_letter(1, "gone"), what="sent",
                           intent=inserts("gone", range(2, 3))[0])]
    with pytest.raises(ConfigError, match="gone"):
        dlq.send(settings, planned)
    assert producer.sent == []


def _letter(offset: int, tenant: str) -> dlq.DeadLetter:
    return dlq.DeadLetter(
        offset=offset, tenant=tenant, accounting_id=offset, code=f"C{offset}", op="c",
        lsn=100 + offset, topic="acct2crm.commands", error="CrmRejected", reason="422",
        failed_at="2026-11-30T00:00:00", redriven=None,
    )
