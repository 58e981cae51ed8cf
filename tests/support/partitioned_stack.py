"""A stack of the tests' own whose change topic has four partitions, for scale-out tests.

The session's stack runs with ``change_partitions = 1`` (the product's default),
where a second worker owns nothing and a SIGKILL moves no partition. This one is
started with ``change_partitions = 4`` on a fixed port slot of the session's band
(slot 8: other own stacks take the first free slot, so they skip it while it
runs), in ``<test home>/partitioned``, with its workers' tables on ``rocksdb://``.
It is started on first use and brought down at the end of the session, unless
``ACCT2CRM_KEEP_STACK=1``.

Also here: the worker group's assignment as Kafka tells it (member id ->
change-topic partitions), which is how a test sees partitions move.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

from acct2crm.kafka_security import client_config
from acct2crm.settings import Settings
from acct2crm.topic_partitions import WORKER_GROUP, tenant_partition
from devstack.bench_workers import bench_tenants
from tests.support.own_stack import OwnStack

PARTITIONS = 4
SLOT = 8
# the session's stack keeps the default memory:// store; this one runs the workers on
# rocksdb://, the store for deployments whose workers restart or move partitions, so
# both stores meet the rebalance, SIGKILL, replay and backfill tests
STORE = "rocksdb://"


@dataclass
class PartitionedStack:
    """The running four-partition stack: its ``OwnStack`` (env, cli) and its settings."""

    own: OwnStack

    @property
    def settings(self) -> Settings:
        return self.own.settings.model_copy(update={"change_partitions": PARTITIONS,
                                                    "table_store": STORE})

    def cli(self, *args: str, timeout: float = 300) -> str:
        """``acct2crm ARGS`` against this stack; its output (a failure fails the test)."""
        done = self.own.cli(*args, timeout=timeout)
        assert done.returncode == 0, f"acct2crm {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done.stdout

    def spread_tenants(self, prefix: str, count: int = PARTITIONS) -> dict[str, int]:
        """``count`` tenant ids whose databases land in different partitions (the bench's
        choice, devstack.bench_workers), each with its partition."""
        chosen = bench_tenants(self.settings, count, prefix=prefix)
        return {t: tenant_partition(self.settings, f"accounting_{t}") for t in chosen}


def group_assignment(settings: Settings) -> dict[str, set[int]] | None:
    """Each member of the worker group -> the change-topic partitions it holds, when the
    group is stable; ``None`` while it rebalances or cannot be read."""
    admin = AdminClient(client_config(settings))
    try:
        [future] = admin.describe_consumer_groups([WORKER_GROUP]).values()
        group = future.result(timeout=10)
    except KafkaException:
        return None
    if group.state != ConsumerGroupState.STABLE:
        return None
    return {
        m.member_id: {tp.partition for tp in m.assignment.topic_partitions
                      if tp.topic == settings.change_topic}
        for m in group.members
    }


def wait_assignment(
    settings: Settings, members: int, timeout_s: float = 180.0
) -> dict[str, set[int]]:
    """The group's assignment once it is stable with ``members`` members that hold
    every partition of the change topic between them."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, set[int]] | None = None
    while time.monotonic() < deadline:
        last = group_assignment(settings)
        if last is not None and len(last) == members:
            held = set().union(*last.values())
            if held == set(range(PARTITIONS)):
                return last
        time.sleep(1.0)
    raise AssertionError(f"the worker group never settled with {members} member(s): {last}")


@pytest.fixture(scope="session")
def partitioned_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PartitionedStack]:
    home = Path(os.environ["ACCT2CRM_HOME"]) / "partitioned"
    # wide enough that the CLI's tables never fold a line
    own = OwnStack(home, extra_env={"ACCT2CRM_CHANGE_PARTITIONS": str(PARTITIONS),
                                    "ACCT2CRM_TABLE_STORE": STORE,
                                    "COLUMNS": "250"}, slot=SLOT)
    stack = PartitionedStack(own)
    try:
        stack.cli("up", "--crm-fault-injection", timeout=900)
        yield stack
    finally:
        if os.environ.get("ACCT2CRM_KEEP_STACK") != "1":
            own.clean_up()
