"""One step of each agent, apart from Faust: admit, handle, record as handled.

A message counts as handled only once every record its handling wrote is
acknowledged by the broker (delivery.py). Faust's supervisor restarts a
crashed agent, but an exception that escapes an agent ends its pass, and the
ledger would hand it the same message forever. So each step catches
everything; what the pipeline could not handle is already a failed result
and a dead letter, and the line goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from acct2crm.app.catch_up import MAX_READ, PartitionGate
from acct2crm.app.command_read import read_command
from acct2crm.app.delivery import Delivery
from acct2crm.app.lanes import TenantLanes
from acct2crm.app.ledger import OffsetLedger
from acct2crm.app.pipeline import ChangeRouter
from acct2crm.model.message import Message

log = logging.getLogger(__name__)


class ChangeStep:
    """Route a batch of changes to commands and results; one wait for the broker.

    Every admitted change is routed in offset order, then the delivery is
    settled once (a refused record is sent again until acknowledged), and only
    then the whole batch counts as handled. Commands that depend on one still
    in flight wait for it first (command_order.py), so they keep commit order.
    """

    def __init__(
        self, ledger: OffsetLedger, router: ChangeRouter, delivery: Delivery,
        gate: PartitionGate | None = None,
    ) -> None:
        self._ledger = ledger
        self._router = router
        self._delivery = delivery
        self._gate = gate or PartitionGate()  # shared with the idle read-back (catch_up.py)

    async def __call__(self, messages: Sequence[Message]) -> None:
        try:
            async with self._gate.holding(messages):
                admitted = await self._ledger.admit_or_pass(messages)
                for message in admitted:
                    await self._router.handle(message)
                await self._delivery.settle()
                self._ledger.handled_or_log(admitted)
        except Exception:
            log.exception("change step failed; the next message reads the rest back")


class CommandStep:
    """Admit a batch of commands and hand each tenant's part to its lane (lanes.py).

    It does not wait for them to be applied: a tenant whose CRM waits must not
    hold the others. The lanes record offsets in the ledger as they are done.
    Each command is decoded here, once, for its lane and its sink (command_read.py).
    """

    def __init__(
        self, ledger: OffsetLedger, lanes: TenantLanes, gate: PartitionGate | None = None,
        *, max_read: int = MAX_READ,
    ) -> None:
        self._ledger = ledger
        self._lanes = lanes
        self._gate = gate or PartitionGate()  # shared with the idle read-back (catch_up.py)
        self._max_read = max_read  # a gap is read back and handed out this many at a time

    async def __call__(self, messages: Sequence[Message]) -> None:
        try:
            async with self._gate.holding(messages):
                try:
                    async for chunk in self._ledger.admit_chunks(messages, self._max_read):
                        self._lanes.dispatch([read_command(m) for m in chunk])
                except Exception:  # handled as delivered: re-applying is harmless by position
                    log.exception("offset ledger unavailable; handing out %d command(s) as "
                                  "delivered", len(messages))
                    self._lanes.dispatch([read_command(m) for m in messages])
        except Exception:
            log.exception("command step failed; the next batch reads the rest back")
