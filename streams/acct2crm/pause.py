"""Pause and resume one tenant's writes to the CRM.

A paused tenant's commands wait exactly as when its CRM is down: that
tenant's lane (app/lanes.py) holds its next batch before any CRM call and
goes on in order once resumed, while other tenants' lanes go on. Changes keep being routed into
commands meanwhile, so nothing is lost and resuming needs no replay.

The state is a small JSON file under the home folder, like the scope file:
``acct2crm pause``/``resume`` write it, the worker checks its modification
time before each batch, and ``status`` reads it even with the worker down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from acct2crm.errors import ConfigError
from acct2crm.private_file import write_private
from acct2crm.settings import Settings
from acct2crm.tenants import read_registry

log = logging.getLogger(__name__)

POLL_S = 0.5


def pause_path(settings: Settings) -> Path:
    return settings.home / "paused.json"


def read_paused(path: Path) -> dict[str, float]:
    """tenant -> when it was paused (epoch seconds)."""
    if not path.exists():
        return {}
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"pause file {path}: {exc}") from exc
    try:
        return {str(tenant): float(since) for tenant, since in dict(data).items()}
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"pause file {path}: expected {{tenant: epoch seconds}}") from exc


def _write(path: Path, paused: dict[str, float]) -> None:
    write_private(path, json.dumps(paused, indent=2, sort_keys=True) + "\n")


def pause(settings: Settings, tenant: str) -> bool:
    """Pause ``tenant``; False if it already was. A name no tenant has is refused: a typo
    would look paused in ``status`` while the tenant meant kept syncing."""
    try:
        registry = read_registry(settings)
    except ConfigError as exc:  # the worker keeps its last good list: pausing must work
        log.warning("cannot check tenant %s against the tenants file (%s); pausing it", tenant,
                    exc)
    else:
        registry.require(tenant)
    path = pause_path(settings)
    paused = read_paused(path)
    if tenant in paused:
        return False
    paused[tenant] = time.time()
    _write(path, paused)
    return True


def resume(settings: Settings, tenant: str) -> bool:
    """Resume ``tenant``; False if it was not paused."""
    path = pause_path(settings)
    paused = read_paused(path)
    if paused.pop(tenant, None) is None:
        return False
    _write(path, paused)
    return True


class PauseGate:
    """The worker's view of the pause file, re-read when it changes."""

    def __init__(self, path: Path, sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
                 ) -> None:
        self.path = path
        self._sleep = sleep
        self._seen: tuple[int, int] | None = None  # mtime and inode: each write is a new file
        self._paused: dict[str, float] = {}
        self.error: str | None = None
        # tenant -> how many of its lanes wait at the gate now (several wait at once)
        self._holding: dict[str, int] = {}

    @property
    def holding(self) -> set[str]:
        """The tenants whose commands are held at the gate now."""
        return set(self._holding)

    def paused(self) -> dict[str, float]:
        try:
            stat = self.path.stat()
            seen: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_ino)
        except OSError:
            seen = None
        if seen != self._seen:
            self._seen = seen
            try:
                self._paused = read_paused(self.path)
                self.error = None
            except ConfigError as exc:  # a broken file keeps the last good state
                self.error = str(exc)
                log.error("%s; keeping the previous pause state", exc)
        return self._paused

    async def wait(self, tenant: str) -> None:
        """Return once ``tenant`` is not paused."""
        if tenant not in self.paused():
            return
        log.info("tenant %s is paused; its changes wait in Kafka", tenant)
        self._holding[tenant] = self._holding.get(tenant, 0) + 1
        try:
            while tenant in self.paused():
                await self._sleep(POLL_S)
        finally:
            left = self._holding.pop(tenant) - 1
            if left:
                self._holding[tenant] = left
        log.info("tenant %s resumed", tenant)
