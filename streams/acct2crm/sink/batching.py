"""Gathers the writes and code look-ups of concurrent lanes into batch calls.

Each lane still awaits its own write before its next command, so a batch
never holds two commands of one lane: commands that share a code or a row
keep commit order, and the commands of one batch are independent. Each item
gets its own answer (a record or the single call's error), so a 409 or 404
inside a batch makes only that lane decide again.

A batch leaves as soon as a call slot is free: while every slot is busy
(or the pace makes calls wait) the queue grows, so batches are as large as
the CRM's speed requires, up to the limit, and an idle sink sends at once.
A failure of the whole call is every item's failure; each lane then waits
and sends its item again (in a later batch).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from acct2crm.errors import CrmError
from acct2crm.model.crm import CrmRecord
from acct2crm.sink.ports import ItemResult, Write

Item = TypeVar("Item")
Answer = TypeVar("Answer")


class Gatherer(Generic[Item, Answer]):
    """Queue items from many tasks; send them ``limit`` at a time, ``slots`` calls at once."""

    def __init__(
        self,
        send: Callable[[list[Item]], Awaitable[list[Answer | CrmError]]],
        limit: int,
        slots: int,
    ) -> None:
        self._send = send
        self._limit = max(1, limit)
        self._slots = asyncio.Semaphore(max(1, slots))
        self._queue: list[tuple[Item, asyncio.Future[Answer]]] = []
        self._runner: asyncio.Task[None] | None = None
        self._calls: set[asyncio.Task[None]] = set()
        self.sizes: deque[int] = deque(maxlen=256)  # sizes of the last batches sent

    async def submit(self, item: Item) -> Answer:
        """This item's answer; raises its error (or the whole call's)."""
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._queue:
            await self._slots.acquire()
            await asyncio.sleep(0)  # lanes made ready by the last answers add theirs first
            taken, self._queue = self._queue[: self._limit], self._queue[self._limit :]
            if not taken:
                self._slots.release()
                break
            call = asyncio.create_task(self._call(taken))
            self._calls.add(call)
            call.add_done_callback(self._calls.discard)

    async def _call(self, taken: list[tuple[Item, asyncio.Future[Answer]]]) -> None:
        try:
            self.sizes.append(len(taken))
            try:
                answers = await self._send([item for item, _ in taken])
            except BaseException as exc:  # the whole call failed: so did each item
                for _, future in taken:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                return
            for (_, future), answer in zip(taken, answers, strict=True):
                if future.done():
                    continue
                if isinstance(answer, CrmError):
                    future.set_exception(answer)
                else:
                    future.set_result(answer)
        finally:
            self._slots.release()


class BatchWrites(Gatherer[Write, CrmRecord]):
    """Creates and updates of many lanes, one batch call per ``limit``."""

    def __init__(
        self,
        send: Callable[[Sequence[Write]], Awaitable[list[ItemResult]]],
        limit: int,
        slots: int,
    ) -> None:
        async def send_all(writes: list[Write]) -> list[CrmRecord | CrmError]:
            return list(await send(writes))

        super().__init__(send_all, limit, slots)


class CodeLookups(Gatherer[str, "CrmRecord | None"]):
    """Who holds each code key, many keys per ``?codes=`` call."""

    def __init__(
        self,
        find: Callable[[Sequence[str]], Awaitable[list[CrmRecord]]],
        key_of: Callable[[str], str],
        limit: int,
        slots: int,
    ) -> None:
        async def find_all(keys: list[str]) -> list[CrmRecord | CrmError | None]:
            wanted = list(dict.fromkeys(keys))
            holders = {key_of(r.code): r for r in await find(wanted)}
            return [holders.get(key) for key in keys]

        super().__init__(find_all, limit, slots)
