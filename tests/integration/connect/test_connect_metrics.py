"""Kafka Connect and Debezium metrics, served by the JMX exporter agent Connect runs with."""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from acct2crm.settings import Settings

pytestmark = pytest.mark.integration

CONNECTOR = "acct2crm-accounting-customer"


def scrape(settings: Settings) -> dict[str, list[tuple[dict[str, str], float]]]:
    answer = httpx.get(f"http://127.0.0.1:{settings.connect_metrics_port}/metrics", timeout=10)
    assert answer.status_code == 200
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            found.setdefault(s.name, []).append((s.labels, s.value))
    return found


def test_debezium_and_connect_metrics_are_exposed(stack_settings: Settings) -> None:
    if stack_settings.configured("connect_url"):
        pytest.fail("this test reads the local stack's Connect")
    deadline = time.monotonic() + 60
    while True:  # Debezium registers its streaming metrics once streaming has started
        found = scrape(stack_settings)
        if "debezium_postgres_millisecondsbehindsource" in found or time.monotonic() > deadline:
            break
        time.sleep(2)
    # the default tenant's connector (a stack with tenants has one per tenant)
    server = stack_settings.topic_prefix
    [(_, behind)] = [
        item for item in found["debezium_postgres_millisecondsbehindsource"]
        if item[0]["context"] == "streaming" and item[0]["server"] == server
    ]
    assert behind >= -1  # -1 until the first event, then the milliseconds behind
    [(_, remaining)] = [i for i in found["debezium_postgres_queueremainingcapacity"]
                        if i[0]["context"] == "streaming" and i[0]["server"] == server]
    [(_, total)] = [i for i in found["debezium_postgres_queuetotalcapacity"]
                    if i[0]["context"] == "streaming" and i[0]["server"] == server]
    assert 0 < remaining <= total
    connector = {(ls["connector"], ls["status"]): v
                 for ls, v in found["kafka_connect_connector_status"]
                 if ls["connector"] == CONNECTOR}
    assert connector == {(CONNECTOR, "running"): 1.0}
    tasks = {(ls["task"], ls["status"]): v for ls, v in found["kafka_connect_task_status"]
             if ls["connector"] == CONNECTOR}
    assert tasks == {("0", "running"): 1.0}
