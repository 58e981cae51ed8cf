"""Commands that depend on each other reach the commands topic in commit order.

The change agent routes a whole batch of changes and then waits once for
the broker's acknowledgement of everything it sent (steps.py). A record the
broker refuses is sent again, so it can land after records sent later. For
commands of different rows and codes that does no harm: the sink applies
such commands side by side anyway. A command sharing a row or a code with
one still unacknowledged must not overtake it, so before such a command is
sent, everything sent so far is settled first.
"""

from __future__ import annotations

from acct2crm.app.delivery import Delivery
from acct2crm.rules.decide import SyncIntent


def order_keys(intent: SyncIntent) -> frozenset[str]:
    """What makes two commands depend on each other: the same row, or a code in common.

    Both within one tenant: tenants' row ids and codes never meet.
    """
    t = intent.tenant
    return frozenset((f"{t}:row:{intent.accounting_id}",
                      *(f"{t}:code:{k}" for k in intent.code_keys())))


class CommandOrder:
    """Settles ``delivery`` before a command that depends on one still in flight."""

    def __init__(self, delivery: Delivery) -> None:
        self._delivery = delivery
        self._in_flight: set[str] = set()  # keys of the commands sent since the last settle
        self.waits = 0  # settles forced by a dependency, for tests and profiles

    async def before_send(self, intent: SyncIntent) -> None:
        if not self._delivery.in_flight:
            self._in_flight.clear()  # everything sent so far is acknowledged
        keys = order_keys(intent)
        if not keys.isdisjoint(self._in_flight):
            self.waits += 1
            await self._delivery.settle()
            self._in_flight.clear()
        self._in_flight |= keys
