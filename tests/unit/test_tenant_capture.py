"""Capture for many tenants: one connector per tenant from the one template, all into the
one change topic partitioned by database; the decoder finds the tenant from source.db."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from acct2crm.connect.config import java_regex_literal, load
from acct2crm.debezium import decode_change
from acct2crm.errors import DecodeError
from acct2crm.settings import Settings
from acct2crm.topic_partitions import java_string_hash, partition_of


def _settings(tmp_path: Path, partitions: int = 12) -> Settings:
    return Settings(home=tmp_path, change_partitions=partitions)


def test_one_connector_per_tenant_into_one_topic(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    (tmp_path / "tok").write_text("t")
    settings.effective_tenants_file.write_text(
        f'[tenants.acme]\ncrm_token_file = "{tmp_path / "tok"}"\n'
    )
    default, acme = load(settings)
    assert default.name == "acct2crm-accounting-customer"  # a kept stack's connector
    assert acme.name == "acct2crm-accounting-customer-acme"
    assert default.config["database.dbname"] == "accounting"
    assert acme.config["database.dbname"] == "accounting_acme"
    assert default.config["slot.name"] != acme.config["slot.name"]
    assert default.config["topic.prefix"] == "acct2crm"
    assert acme.config["topic.prefix"] == "acct2crm.tenant.acme"
    for definition in (default, acme):
        config = definition.config
        assert config["transforms.to_change_topic.replacement"] == settings.change_topic
        assert config["transforms.tenant_partition.partition.payload.fields"] == "source.db"
        assert config["transforms.tenant_partition.partition.topic.num"] == "12"
        assert config["topic.creation.default.partitions"] == "12"
        assert "${acct2crm:" not in json.dumps(config)
        # the router's Java regex takes the tenant's change topic, not its heartbeats
        router = re.compile(config["transforms.to_change_topic.regex"])
        prefix = config["topic.prefix"]
        assert router.fullmatch(f"{prefix}.accounting.customer")
        assert not router.fullmatch(f"__debezium-heartbeat.{prefix}")
        # the partition router applies to the change topic only
        only = re.compile(config["predicates.is_change.pattern"])
        assert only.fullmatch(settings.change_topic)
        assert not only.fullmatch(settings.change_topic.replace(".", "x"))


def test_java_regex_literal_matches_only_itself() -> None:
    pattern = re.compile(java_regex_literal("a.b-c_d"))
    assert pattern.fullmatch("a.b-c_d")
    assert not pattern.fullmatch("aXb-c_d")


def _envelope(db: str | None) -> bytes:
    source: dict[str, object] = {"lsn": 10, "txId": 1, "ts_ms": 1}
    if db is not None:
        source["db"] = db
    return json.dumps({
        "op": "c", "before": None, "after": {"id": 7, "code": "C1"}, "source": source,
    }).encode()


def test_decoder_finds_the_tenant_from_source_db() -> None:
    tenants = {"accounting": "default", "accounting_acme": "acme"}
    change = decode_change(None, _envelope("accounting_acme"), tenant="default",
                           tenant_of=tenants.get)
    assert change is not None and change.tenant == "acme"
    assert change.external_ref == "acme:7"
    with pytest.raises(DecodeError, match="no tenant names"):
        decode_change(None, _envelope("accounting_other"), tenant="default",
                      tenant_of=tenants.get)
    with pytest.raises(DecodeError, match=r"source\.db"):
        decode_change(None, _envelope(None), tenant="default", tenant_of=tenants.get)
    # without a registry: the given tenant, as before
    change = decode_change(None, _envelope("accounting_acme"), tenant="default")
    assert change is not None and change.tenant == "default"


def test_partition_of_follows_debezium_partition_routing() -> None:
    # Java: "hello".hashCode() == 99162322, "Aa" and "BB" collide at 2112
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("Aa") == java_string_hash("BB") == 2112
    assert java_string_hash("polygenelubricants") == -2147483648  # Integer.MIN_VALUE
    assert partition_of("polygenelubricants", 12) == 0  # sign bit cleared
    assert partition_of("hello", 12) == 99162322 % 12
    assert {partition_of(f"accounting_t{i}", 12) for i in range(40)} == set(range(12))
