"""The Faust worker: topology, wiring, agents and the status page put together.

Every topic the app reads or writes has ONE partition per tenant: the rules
depend on codes, codes move between rows, so one tenant's changes must be
decided and applied in commit order (docs/design.md, "Order across rows").
"""

from __future__ import annotations

import logging

import faust

from acct2crm import metrics
from acct2crm.app.agents import register_agents
from acct2crm.app.cockpit_web import register_cockpit
from acct2crm.app.event_loop import install_event_loop
from acct2crm.app.recovery_watch import register_recovery_watch
from acct2crm.app.result_indexer import register_result_indexer
from acct2crm.app.topology import build_topology
from acct2crm.app.web import register_status_page
from acct2crm.app.wiring import build_wiring
from acct2crm.errors import ConfigError
from acct2crm.kafka_check import CONFIG_KINDS, check_kafka
from acct2crm.log_format import logging_config
from acct2crm.settings import Settings

log = logging.getLogger(__name__)


def build_app(settings: Settings) -> faust.App:
    """A Faust app wired to the configured Kafka and CRM (one tenant)."""
    topology = build_topology(settings)
    wiring = build_wiring(settings, topology)
    register_agents(settings, topology, wiring)
    register_status_page(topology.app, wiring)
    register_cockpit(settings, topology, wiring)
    register_result_indexer(topology.app, settings)
    register_recovery_watch(topology.app, settings.recovery_stall_s)
    return topology.app


def run_worker(settings: Settings, loglevel: str | None = None) -> None:
    """Run the worker until SIGTERM/SIGINT."""
    # Faust's data folder lives under home, which only `acct2crm up` created before
    (settings.home / "worker").mkdir(parents=True, exist_ok=True)
    # wrong credentials or certificates: stop with the reason, not retry in silence
    problem = check_kafka(settings)
    if problem is not None and problem.kind in CONFIG_KINDS:
        raise ConfigError(problem.message)
    loop = install_event_loop(settings.event_loop)  # before anything asks for a loop
    metrics.worker_info(event_loop=loop)
    app = build_app(settings)

    @app.task  # type: ignore[untyped-decorator]
    async def say_loop() -> None:  # at start, once the worker's logging is set up
        log.info("event loop: %s (setting event_loop = %s)", loop, settings.event_loop)

    level = loglevel or settings.log_level
    worker = faust.Worker(app, loglevel=level, quiet=True,
                          logging_config=logging_config(settings.log_format, level))
    worker.execute_from_commandline()
