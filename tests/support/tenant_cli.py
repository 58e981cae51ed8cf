"""The CLI as an operator runs it, and a Pipeline on one tenant's database and CRM account."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pydantic import SecretStr

from acct2crm.settings import Settings
from tests.support.sync import Pipeline


def cli(*args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "acct2crm.cli", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert done.returncode == 0, f"acct2crm {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def tenant_pipe(settings: Settings, tenant_id: str) -> Pipeline:
    """A Pipeline on the tenant's database and CRM account, as `tenants list` gives them."""
    entry = json.loads(cli("tenants", "list", "--json"))[tenant_id]
    database = entry["postgres_dsn"].rsplit("/", 1)[1]
    token = SecretStr(entry["crm_token"])
    return Pipeline.start(settings.model_copy(update={"pg_database": database, "crm_token": token}))
