"""Backfill on a change topic with four partitions: its commands go to the company's own
partition (behind its other commands, into its lane and table partitions) and ``--wait``
follows that partition until the worker has handled them."""

from __future__ import annotations

import pytest

from acct2crm.follow_worker import end_offset
from acct2crm.model.keys import offset_key
from acct2crm.progress import handled_offsets
from acct2crm.topic_partitions import tenant_partition
from tests.support.partitioned_stack import PARTITIONS, PartitionedStack
from tests.support.sync import Pipeline, unique_tag

pytestmark = pytest.mark.integration


def test_backfill_commands_stay_in_the_company_partition(
    partitioned_stack: PartitionedStack,
) -> None:
    stack = partitioned_stack
    settings = stack.settings
    own = tenant_partition(settings, settings.pg_database)
    assert own != 0  # partition 0 is where a default producer or follower would look
    pipe = Pipeline.start(settings)
    tag = unique_tag("BF")
    row = pipe.insert(f"{tag}-A", name="Backfilled")
    assert pipe.results([row], 1)[0]["action"] == "created"

    topic = settings.commands_topic
    before = {p: end_offset(settings, topic, p) for p in range(PARTITIONS)}
    said = stack.cli("backfill", "--wait")
    after = {p: end_offset(settings, topic, p) for p in range(PARTITIONS)}
    sent = int(said.split(" in-scope rows sent")[0].split()[-1])
    assert sent >= 1
    assert {p: after[p] - before[p] for p in range(PARTITIONS)} == {
        p: (sent if p == own else 0) for p in range(PARTITIONS)}
    # --wait returned once the worker had handled the last of them, in that partition
    handled = handled_offsets(settings).get(offset_key(topic, own))
    assert handled is not None and handled >= after[own] - 1
    again = pipe.results([row], 2)
    assert [r["action"] for r in again] == ["created", "unchanged"]
    pipe.close()
