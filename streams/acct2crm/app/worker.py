"""The Faust worker: topology, wiring, agents and the status page put together.

Every topic the app reads or writes has ONE partition per tenant: the rules
depend on codes, codes move between rows, so one tenant's changes must be
decided and applied in commit order (docs/design.md, "Order across rows").
"""

from __future__ import annotations

import faust

from acct2crm.app.agents import register_agents
from acct2crm.app.result_indexer import register_result_indexer
from acct2crm.app.topology import build_topology
from acct2crm.app.web import register_status_page
from acct2crm.app.wiring import build_wiring
from acct2crm.settings import Settings


def build_app(settings: Settings) -> faust.App:
    """A Faust app wired to the configured Kafka and CRM (one tenant)."""
    topology = build_topology(settings)
    wiring = build_wiring(settings, topology)
    register_agents(settings, topology, wiring)
    register_status_page(topology.app, wiring)
    register_result_indexer(topology.app, settings)
    return topology.app


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the worker until SIGTERM/SIGINT."""
    # Faust's data folder lives under home, which only `acct2crm up` created before
    (settings.home / "worker").mkdir(parents=True, exist_ok=True)
    app = build_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
