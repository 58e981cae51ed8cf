"""The consumer starts past the last change: it is read back without a next message.

Faust's consumer, around a restart, can commit past messages it never hands
to the agent. The ledger notices such a gap when the next message arrives;
the last change(s) before a quiet spell have no next message. Here the skip
is made deterministic: with the worker stopped, a change is written, and the
worker group's committed offset is moved past it (what the skipping consumer
does) while the ledger stays behind. Started again, the worker must apply the
change within seconds, with nothing else arriving on the topic.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import TopicPartition

from acct2crm.kafka_io import consumer
from acct2crm.progress import WORKER_GROUP, lag
from acct2crm.replay import worker_group_active
from acct2crm.settings import Settings
from devstack import lifecycle
from devstack.plugin import LOCAL_STACK
from tests.support.sync import Pipeline, end_offset, unique_tag

pytestmark = pytest.mark.integration

# from the worker answering its status page: the read-back comes 2-4 s after the agent
# fell idle; the rest is room for a slow start. Without it the change waits for another.
APPLIED_WITHIN_S = 60.0


def wait_until(check: object, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not callable(check) or not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.3)


def commit_group(settings: Settings, topic: str, offset: int) -> None:
    c = consumer(settings, WORKER_GROUP)
    try:
        c.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        c.close()


def test_a_change_the_consumer_skipped_is_applied_without_a_next_message(
    stack_settings: Settings,
) -> None:
    pipe = Pipeline.start(stack_settings)
    topic = stack_settings.change_topic
    tag = unique_tag("G")
    try:
        before = pipe.insert(f"{tag}-A")
        pipe.results([before], 1)
        wait_until(lambda: lag(stack_settings) == 0, "the worker did not catch up")

        assert LOCAL_STACK.stop_worker(stack_settings)
        wait_until(lambda: not worker_group_active(stack_settings), "the worker group stays")
        end = end_offset(stack_settings, topic)
        row = pipe.insert(f"{tag}-B")
        wait_until(lambda: end_offset(stack_settings, topic) > end, "the change never came")
        skipped_to = end_offset(stack_settings, topic)
        commit_group(stack_settings, topic, skipped_to)  # the ledger still says end - 1

        lifecycle.up(stack_settings, crm_fault_injection=True, echo=lambda _line: None)
        started = time.monotonic()
        [result] = pipe.results([row], 1, timeout_s=APPLIED_WITHIN_S)
        took = time.monotonic() - started
        print(f"skipped change applied {took:.1f} s after the worker started")
    finally:
        lifecycle.up(stack_settings, crm_fault_injection=True, echo=lambda _line: None)
        pipe.close()

    assert result["action"] == "created"
    assert end_offset(stack_settings, topic) == skipped_to  # nothing else came to help
    [record] = pipe.crm_by_code(f"{tag}-B")
    assert record["external_ref"] == f"default:{row}"
    wait_until(lambda: lag(stack_settings) == 0, "the ledger did not reach the end", 30)
