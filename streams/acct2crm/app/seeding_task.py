"""Runs the seeder while this worker holds the tenant's partition, outside the agents.

Seeding starts once Faust has restored the tables (so a restart finds how
far it got) and this worker was given the commands partition; it stops when
that partition goes to another worker. Checked once a second.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TP

from acct2crm.sink.seeding import Seeder

CHECK_EVERY_S = 1.0


def holds_partition(app: Any, topic: str, partition: int = 0) -> bool:
    """Tables restored, no rebalance under way, and the tenant's partition assigned here."""
    if app.rebalancing or not app.tables.recovery.completed.is_set():
        return False
    return TP(topic, partition) in app.consumer.assignment()


async def check_seeding(app: Any, seeder: Seeder, commands_topic: str, partition: int = 0
                        ) -> None:
    """Start seeding where this worker holds the partition, stop it where it does not."""
    try:
        if holds_partition(app, commands_topic, partition):
            seeder.start()
        else:
            await seeder.stop()
    except Exception as exc:  # a timer that raises stops for good
        seeder.progress.reason = f"could not check the partition: {exc}"


def register_seeding(app: faust.App, seeder: Seeder, commands_topic: str, partition: int = 0
                     ) -> None:
    @app.timer(interval=CHECK_EVERY_S, name=f"seeding-{seeder.tenant}")  # type: ignore[untyped-decorator]
    async def keep_seeding() -> None:
        await check_seeding(app, seeder, commands_topic, partition)
