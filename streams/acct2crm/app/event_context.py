"""Make the tables' writes go to one partition's changelog without touching the stream.

Faust sends a table write to the partition of the *current event*: a context
variable of the task doing the write. ``Stream._set_current_event`` also sets
the stream's own ``current_event`` attribute, and that one is shared with
the task filling ``take_events``' buffer: that task notes the attribute only
after it has waited for the batch being handled to finish. An agent that set
the attribute meanwhile (one step per partition of a batch) made the buffer
keep its event in place of the one just read: the read event was never
handled nor acknowledged (the offset ledger read it back, slowly, and the
group's committed offset stayed behind it) and another was handled twice.
Only the context variable is needed, and it belongs to the agent's task alone.
"""

from __future__ import annotations

import weakref
from typing import Any

from faust.streams import _current_event
from faust.types import EventT


def write_as(event: EventT[Any]) -> None:
    """This task's table writes go to ``event``'s partition (Faust keeps a weak reference:
    the caller holds the event while it writes)."""
    _current_event.set(weakref.ref(event))
