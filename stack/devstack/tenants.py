"""``acct2crm tenants add ID``: a new company on the local stack, synced without a restart.

Each step finds what an earlier run made and keeps it, so running it again
changes nothing: the database ``accounting_<ID>`` provisioned as the default one
(table, replication grants, heartbeat table, publication; Debezium makes the
tenant's slot), the reference CRM account and its token
(a 0600 file under ``<home>/secrets/tenants``), the entry in the tenants file
(which the worker re-reads), and the tenant's connector.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePath
from typing import Any

import httpx

from acct2crm.connect.client import ConnectClient
from acct2crm.connect.config import load
from acct2crm.connect.operations import apply_one, wait_running
from acct2crm.connect.secrets import write_connect_secrets
from acct2crm.errors import ConnectError, StackError
from acct2crm.settings import Settings
from acct2crm.tenants import Tenant, check_tenant_id, read_registry, upsert_tenant_entry
from devstack import postgres, safe_fs
from devstack.paths import StackPaths

Echo = Callable[[str], Any]


def token_file(settings: Settings, tenant_id: str) -> PurePath:
    """Where the tenant's CRM token is kept, relative to the state folder."""
    return PurePath("secrets", "tenants", f"{tenant_id}.token")


def crm_account(settings: Settings, tenant_id: str) -> str:
    """The tenant's account in the reference CRM (made or found): its token."""
    try:
        answer = httpx.post(
            f"{settings.crm_url}/admin/accounts", json={"account": tenant_id},
            headers={"Authorization": f"Bearer {settings.crm_token.get_secret_value()}"},
            timeout=10.0,
        )
    except httpx.HTTPError as exc:
        raise StackError(f"the reference CRM did not answer /admin/accounts: {exc!r}") from exc
    if answer.status_code not in (200, 201):
        raise StackError(f"the reference CRM refused the account {tenant_id}: "
                         f"HTTP {answer.status_code}")
    token = answer.json().get("token")
    if not isinstance(token, str) or not token:
        raise StackError("the reference CRM answered /admin/accounts without a token")
    return token


def add(settings: Settings, tenant_id: str, *, echo: Echo = print) -> Tenant:
    """Everything a new tenant needs on the running local stack; idempotent."""
    check_tenant_id(tenant_id)
    if tenant_id == settings.tenant:
        raise StackError(f"{tenant_id!r} is the built-in tenant; it always exists")
    paths = StackPaths.of(settings)
    database = f"accounting_{tenant_id}"
    made = postgres.provision_database(settings, paths, database)
    echo(f"database {database}: {'created' if made else 'already there'}")
    token = crm_account(settings, tenant_id)
    secret = token_file(settings, tenant_id)
    safe_fs.ensure_dir(paths.home, secret.parent)
    safe_fs.write_file(paths.home, secret, token + "\n")
    entry = {"database": database, "crm_token_file": str(paths.home / secret)}
    written = upsert_tenant_entry(settings.effective_tenants_file, tenant_id, entry)
    echo(f"tenants file: {'added ' + tenant_id if written else tenant_id + ' already listed'}")
    tenant = read_registry(settings).get(tenant_id)
    if tenant is None:  # pragma: no cover - the entry was just checked in
        raise StackError(f"tenant {tenant_id} is not in {settings.effective_tenants_file}")
    write_connect_secrets(settings)
    try:
        with ConnectClient(settings.connect_url) as client:
            for definition in load(settings, tenants=[tenant]):
                change = apply_one(client, definition)
                state = wait_running(client, definition.name)
                echo(f"connector {definition.name}: {change}, {state.state}")
    except ConnectError as exc:
        raise StackError(str(exc)) from exc
    return tenant


def listing(settings: Settings) -> dict[str, dict[str, str]]:
    """``tenants list --json``: every tenant's DSN (as it connects) and CRM URL and token."""
    found = {}
    for tenant in read_registry(settings):
        dsn = settings.model_copy(update={"pg_database": tenant.database}).postgres_dsn
        found[tenant.id] = {
            "postgres_dsn": dsn,
            "crm_url": tenant.crm_url,
            "crm_token": tenant.crm_token.get_secret_value(),
        }
    return found
