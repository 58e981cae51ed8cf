"""A command is sent to its change's partition, also when the change was read back outside
an event (catch_up.py): there the producer has no event to ask."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from acct2crm.app.co_partition import CHANGE_PARTITION, co_partitioned
from acct2crm.app.pipeline import ChangeRouter, Outputs
from acct2crm.model.message import Message
from acct2crm.scope_file import ScopeWatcher
from tests.support.changes import row


class Topic:
    """A commands topic whose app's producer records where each record was sent."""

    def __init__(self) -> None:
        self.partitions: list[int | None] = []
        self.app = self  # topic.app.producer: this object
        self.producer = self

    def get_topic_name(self) -> str:
        return "commands"

    async def send(self, topic: str, key: bytes | None, value: bytes, **kwargs: Any) -> None:
        assert topic == "commands"
        self.partitions.append(kwargs["partition"])


async def test_the_command_of_a_change_read_back_goes_to_that_changes_partition(
    tmp_path: Path,
) -> None:
    topic = Topic()

    async def nowhere(key: bytes | None, value: bytes) -> None:
        return None

    outputs = Outputs("default", co_partitioned(topic), nowhere, nowhere)  # type: ignore[arg-type]
    router = ChangeRouter(ScopeWatcher(tmp_path / "scope.toml"), {}, outputs)
    value = json.dumps({"op": "c", "before": None, "after": row(1),
                        "source": {"lsn": 12, "txId": 1, "ts_ms": 1}}).encode()
    await router.handle(Message("changes", 3, 40, b'{"id": 1}', value))  # no Faust event here
    assert topic.partitions == [3]
    assert CHANGE_PARTITION.get() is None  # not left behind for the next message
