"""``python -m refcrm [--host H] [--port P] [--db PATH] [--fault-injection]``.

Defaults come from the settings: port ``crm_port``, database
``<home>/crm/crm.sqlite3``, token ``crm_token`` (never on the command line),
rate limit ``refcrm_rate_limit_per_s`` (0 = none); fault injection only with
``--fault-injection`` or the explicit setting ``refcrm_fault_injection``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import uvicorn

from acct2crm.settings import Settings, get_settings
from refcrm.app import create_app


def default_db(settings: Settings) -> Path:
    return settings.home / "crm" / "crm.sqlite3"


def parse_args(settings: Settings, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m refcrm", description="The acct2crm reference CRM."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=settings.crm_port)
    parser.add_argument("--db", type=Path, default=default_db(settings), help="SQLite file")
    parser.add_argument(
        "--fault-injection",
        action="store_true",
        default=settings.refcrm_fault_injection,
        help="enable /admin/faults so tests can break the /api routes"
        " (also ACCT2CRM_REFCRM_FAULT_INJECTION=true; off by default)",
    )
    parser.add_argument(
        "--rate-limit-per-s",
        type=int,
        default=settings.refcrm_rate_limit_per_s,
        help="calls per second across /api (0 = no limit)",
    )
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    args = parse_args(settings, argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    app = create_app(
        args.db,
        settings.crm_token,
        fault_injection=args.fault_injection,
        rate_limit_per_s=args.rate_limit_per_s,
    )
    logging.getLogger("refcrm").info(
        "reference CRM on http://%s:%d, database %s, fault injection %s, rate limit %s/s",
        args.host, args.port, args.db, "on" if args.fault_injection else "off",
        args.rate_limit_per_s or "no",
    )
    uvicorn.run(
        app, host=args.host, port=args.port, log_level=args.log_level, access_log=False
    )


if __name__ == "__main__":
    main()
