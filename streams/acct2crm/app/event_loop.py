"""Which asyncio event loop the worker runs on.

A change costs the worker a few hundred microseconds, and about a quarter of
them is the event loop itself (tasks, callbacks, socket writes to Kafka).
uvloop does that work in C: on the bench stack a replay ran 10-24% faster
and a worker spent 10-13% less CPU a change. The standard loop stays one
setting away, for a platform without uvloop, to rule it out when chasing a
problem, or to profile (py-spy does not see through uvloop's loop).
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Literal

from acct2crm.errors import ConfigError

LoopChoice = Literal["auto", "uvloop", "asyncio"]
Loop = Literal["uvloop", "asyncio"]


def _uvloop_policy() -> asyncio.AbstractEventLoopPolicy | None:
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    policy: asyncio.AbstractEventLoopPolicy = uvloop.EventLoopPolicy()
    return policy


def install_event_loop(choice: LoopChoice) -> Loop:
    """Make ``choice`` the loop every later ``asyncio`` call gets; the loop installed.

    ``auto`` takes uvloop where it is installed; asking for ``uvloop`` where it
    is not is a configuration error, never a silent fall-back.
    """
    policy = None if choice == "asyncio" else _uvloop_policy()
    if policy is None and choice == "uvloop":
        raise ConfigError(
            "event_loop = uvloop, but uvloop is not installed "
            "(pip install uvloop, or set event_loop to auto or asyncio)"
        )
    asyncio.set_event_loop_policy(policy)  # None: asyncio's own
    return "asyncio" if policy is None else "uvloop"
