"""The Faust app class the worker runs: its web server serves only our own pages.

Faust mounts built-in pages on every app's web server: ``/table/<name>/<key>/``
answers any table's values by key (here: customer records and positions),
``/router/`` the cluster's partition map, ``/`` an index - all without
authentication. The product serves one page, the status view; the built-in
blueprints are left out of the server altogether.
"""

from __future__ import annotations

from typing import Any, ClassVar

import faust
from faust.types.transports import TransportT
from faust.web.base import Web
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from acct2crm.app.fetch_wait import ShortWaitTransport

_NONE: Any = ()


class OwnPagesWeb(AiohttpWeb):
    """aiohttp, with none of Faust's blueprints: only ``app.page`` routes exist."""

    default_blueprints: ClassVar[Any] = _NONE
    production_blueprints: ClassVar[Any] = _NONE
    debug_blueprints: ClassVar[Any] = _NONE
    optional_blueprints: ClassVar[Any] = _NONE


class WorkerApp(faust.App):
    def _new_web(self) -> Web:
        return OwnPagesWeb(self)

    def _new_transport(self) -> TransportT:
        # a short long-poll for the worker's consumer: see fetch_wait.py
        return ShortWaitTransport(self.conf.broker_consumer, self)

