"""Records sent to Kafka and the wait for the broker's acknowledgement.

Sending a record to Faust's producer only queues it: the producer delivers it later,
or fails to. An offset may count as handled only once everything its
handling wrote is on the broker, so each agent step sends through a
``Delivery`` and settles it before the ledger moves. A record the broker
refused is sent again (with backoff) until it is acknowledged: never dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from acct2crm.app.pipeline import Send
from acct2crm.sink.pacing import RetryPolicy, WaitState

log = logging.getLogger(__name__)

# queue one record; what it returns is awaited for the broker's acknowledgement
Produce = Callable[[bytes | None, bytes], Awaitable[Awaitable[Any]]]
Sleep = Callable[[float], Awaitable[Any]]


@dataclass
class _Record:
    produce: Produce
    key: bytes | None
    value: bytes
    ack: Awaitable[Any] | None = None
    error: BaseException | None = None


class Delivery:
    """One agent's records in flight (one per agent: a step settles only its own)."""

    def __init__(
        self,
        name: str,
        retry: RetryPolicy | None = None,
        state: WaitState | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = name
        self.state = state or WaitState()  # why sends are failing, for the status page
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._pending: list[_Record] = []
        # tenant lanes settle at once: a caller must not return while another
        # caller still waits for records it sent
        self._settling = asyncio.Lock()

    @property
    def in_flight(self) -> int:
        """Records sent and not yet settled."""
        return len(self._pending)

    def sender(self, produce: Produce) -> Send:
        async def send(key: bytes | None, value: bytes) -> None:
            self._pending.append(await self._start(_Record(produce, key, value)))

        return send

    async def settle(self) -> None:
        """Return once the broker acknowledged every record sent so far; resend the refused."""
        async with self._settling:
            await self._settle()

    async def _settle(self) -> None:
        attempt = 0
        while self._pending:
            pending, self._pending = self._pending, []
            refused = [record for record in pending if not await self._acknowledged(record)]
            if not refused:
                break
            attempt += 1
            error = refused[0].error
            self.state.waiting(f"Kafka refused {len(refused)} record(s): {error!r}")
            log.warning("%s: %d record(s) not delivered (%r); sending again", self.name,
                        len(refused), error)
            await self._sleep(self._retry.delay(attempt, None))
            self._pending = [await self._start(record) for record in refused] + self._pending
        self.state.clear()

    @staticmethod
    async def _start(record: _Record) -> _Record:
        record.ack, record.error = None, None
        try:
            record.ack = await record.produce(record.key, record.value)
        except Exception as exc:
            record.error = exc
        return record

    @staticmethod
    async def _acknowledged(record: _Record) -> bool:
        if record.ack is None:
            return False
        try:
            await record.ack
        except Exception as exc:
            record.error = exc
            return False
        return True
