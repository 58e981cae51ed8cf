"""The worker's offset ledger is read for every partition (many tenants): each partition's
entries from that partition of the ledger's changelog, so lag, a tenant's lag and
``replay --wait`` see partitions other than 0."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import pytest

from acct2crm import follow_worker, progress
from acct2crm.model.keys import offset_key
from acct2crm.settings import Settings


def test_handled_offsets_reads_each_partitions_entries_from_its_partition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(change_partitions=3)
    asked: list[tuple[int, set[str]]] = []

    def latest_values(_s: Settings, topic: str, keys: Collection[Any],
                      decode: Callable[[bytes], Any], *, partition: int = 0,
                      **_kw: Any) -> dict[Any, Any]:
        assert topic == progress.LEDGER_CHANGELOG
        asked.append((partition, set(keys)))
        return {key: {"offset": 10 * partition + i} for i, key in enumerate(sorted(keys))}

    monkeypatch.setattr(progress, "latest_values", latest_values)
    found = progress.handled_offsets(settings)
    assert asked == [
        (p, {offset_key(settings.change_topic, p), offset_key(settings.commands_topic, p)})
        for p in range(3)
    ]
    assert found[offset_key(settings.change_topic, 2)] in {20, 21}
    assert len(found) == 6


def test_follow_sums_every_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = {offset_key("t", 0): 9, offset_key("t", 2): 4}
    monkeypatch.setattr(follow_worker, "handled_offsets", lambda _s: ledger)

    class Seen:
        def __init__(self) -> None:
            self.completed: list[int] = []

        def update(self, *, completed: int) -> None:
            self.completed.append(completed)

    seen = Seen()
    assert follow_worker.follow(Settings(), "t", {0: 5, 2: 0}, {0: 10, 2: 5}, seen,  # type: ignore[arg-type]
                                sleep=lambda _s: None)
    assert seen.completed == [10]
