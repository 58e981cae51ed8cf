"""The tenant registry: which companies are synced, each to its own CRM account.

A tenant is one accounting database, one CRM URL and token, one sync scope.
The ``default`` tenant always exists and is today's single-company settings
(``pg_database``, ``crm_url``, ``crm_token``, ``scope_file``). Every other
tenant is an entry of the operator's TOML file (setting ``tenants_file``,
default ``<home>/tenants.toml``)::

    [tenants.acme]
    database = "accounting_acme"          # default: accounting_<id>
    crm_url = "https://crm.example.com"   # default: the setting crm_url
    crm_token_file = "/run/secrets/acme"  # or: crm_token_env = "ACME_CRM_TOKEN"
    scope_file = "/etc/acct2crm/acme.toml"  # default: <home>/scopes/<id>.toml

The token is read from the secret file (or the named environment variable:
the operator's way to pass a secret to a container) and kept as a
``SecretStr``: it is never logged nor printed by accident. ``TenantWatcher``
re-reads the file when it changes, so a tenant is added without a restart; a
broken edit keeps the last good registry in force and is reported.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from acct2crm.errors import ConfigError
from acct2crm.file_stamp import RECHECK_S, FileStamp, Stamp
from acct2crm.private_file import write_private
from acct2crm.settings import Settings

log = logging.getLogger(__name__)

TENANT_ID = re.compile(r"^[a-z0-9_]{1,32}$")
ENTRY_KEYS = frozenset({"database", "crm_url", "crm_token_file", "crm_token_env", "scope_file"})


@dataclass(frozen=True)
class Tenant:
    """One company: where its rows come from and where they go."""

    id: str
    database: str
    crm_url: str
    crm_token: SecretStr
    scope_file: Path
    # Debezium's logical name for this tenant's connector (topics, heartbeats, metrics)
    topic_prefix: str
    # the replication slot is cluster-wide, so each tenant's database needs its own
    slot: str
    connector: str

    @property
    def is_default(self) -> bool:
        return self.connector == DEFAULT_CONNECTOR


DEFAULT_CONNECTOR = "acct2crm-accounting-customer"


def check_tenant_id(tenant_id: str) -> str:
    if not TENANT_ID.match(tenant_id):
        raise ConfigError(
            f"tenant id {tenant_id!r}: allowed are 1 to 32 of a-z, 0-9 and _ (e.g. acme_2)"
        )
    return tenant_id


def default_tenant(settings: Settings) -> Tenant:
    """Today's single-company settings, as the tenant ``settings.tenant``."""
    return Tenant(
        id=settings.tenant,
        database=settings.pg_database,
        crm_url=settings.crm_url,
        crm_token=settings.crm_token,
        scope_file=settings.effective_scope_file,
        topic_prefix=settings.topic_prefix,
        slot=settings.pg_slot,
        connector=DEFAULT_CONNECTOR,
    )


def tenant_from_entry(settings: Settings, tenant_id: str, entry: Mapping[str, Any]) -> Tenant:
    """One file entry checked and completed with its defaults."""
    where = f"tenant {tenant_id!r} in {settings.effective_tenants_file}"
    check_tenant_id(tenant_id)
    if tenant_id == settings.tenant:
        raise ConfigError(f"{where}: {tenant_id!r} is the built-in tenant of the settings")
    unknown = sorted(set(entry) - ENTRY_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(ENTRY_KEYS)}")
    for key, value in entry.items():
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: {key} must be a non-empty string")
    crm_url = str(entry.get("crm_url", settings.crm_url)).rstrip("/")
    if not re.match(r"^https?://[^/\s]+", crm_url):
        raise ConfigError(f"{where}: crm_url must be an http:// or https:// URL with a host")
    return Tenant(
        id=tenant_id,
        database=str(entry.get("database", f"accounting_{tenant_id}")),
        crm_url=crm_url,
        crm_token=_token(entry, where),
        scope_file=Path(entry["scope_file"]) if "scope_file" in entry
        else settings.home / "scopes" / f"{tenant_id}.toml",
        topic_prefix=f"{settings.topic_prefix}.tenant.{tenant_id}",
        slot=f"{settings.pg_slot}_{tenant_id}",
        connector=f"{DEFAULT_CONNECTOR}-{tenant_id}",
    )


def _token(entry: Mapping[str, Any], where: str) -> SecretStr:
    if ("crm_token_file" in entry) == ("crm_token_env" in entry):
        raise ConfigError(f"{where}: give exactly one of crm_token_file and crm_token_env")
    if "crm_token_file" in entry:
        path = Path(entry["crm_token_file"])
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{where}: crm_token_file {path}: {exc.strerror}") from exc
        if not token:
            raise ConfigError(f"{where}: crm_token_file {path} is empty")
        return SecretStr(token)
    name = str(entry["crm_token_env"])
    value = os.environ.get(name, "")
    if not value:
        raise ConfigError(f"{where}: environment variable {name} (crm_token_env) is not set")
    return SecretStr(value)


@dataclass(frozen=True)
class TenantRegistry:
    """Every tenant by id, the default one first."""

    tenants: Mapping[str, Tenant]

    def __iter__(self) -> Iterator[Tenant]:
        return iter(self.tenants.values())

    def __len__(self) -> int:
        return len(self.tenants)

    def get(self, tenant_id: str) -> Tenant | None:
        return self.tenants.get(tenant_id)

    def require(self, tenant_id: str) -> Tenant:
        """The tenant an operator named; a name no tenant has is a ``ConfigError`` that
        lists the tenants (a typo must not pass for a tenant with nothing to do)."""
        tenant = self.tenants.get(tenant_id)
        if tenant is None:
            known = ", ".join(self.tenants)
            raise ConfigError(f"no tenant {tenant_id!r}; the tenants are: {known}")
        return tenant

    def tenant_of(self) -> Callable[[str], str | None]:
        """Database -> tenant id as a dict lookup, for a reader deciding per message (the
        first tenant naming a database wins, as in ``by_database``)."""
        return {t.database: t.id for t in reversed(list(self.tenants.values()))}.get

    def by_database(self, database: str) -> Tenant | None:
        """The tenant whose database Debezium named in ``source.db``."""
        for tenant in self.tenants.values():
            if tenant.database == database:
                return tenant
        return None


def read_registry(settings: Settings) -> TenantRegistry:
    """The default tenant plus the file's; ``ConfigError`` naming the first problem."""
    default = default_tenant(settings)
    tenants: dict[str, Tenant] = {default.id: default}
    path = settings.effective_tenants_file
    if not path.exists():
        return TenantRegistry(tenants)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"tenants file {path}: {exc}") from exc
    extra = sorted(set(data) - {"tenants"})
    if extra:
        raise ConfigError(f"tenants file {path}: unknown top-level key(s) {extra}")
    entries = data.get("tenants", {})
    if not isinstance(entries, dict):
        raise ConfigError(f"tenants file {path}: 'tenants' must be a table of [tenants.<id>]")
    databases = {default.database: default.id}
    for tenant_id, entry in entries.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"tenants file {path}: [tenants.{tenant_id}] must be a table")
        tenant = tenant_from_entry(settings, tenant_id, entry)
        if tenant.database in databases:
            raise ConfigError(
                f"tenants file {path}: tenants {databases[tenant.database]!r} and "
                f"{tenant_id!r} share the database {tenant.database!r}"
            )
        databases[tenant.database] = tenant_id
        tenants[tenant_id] = tenant
    return TenantRegistry(tenants)


class TenantWatcher:
    """The registry in force, re-read when the file changes (no restart to add a tenant)."""

    def __init__(self, settings: Settings, every_s: float = RECHECK_S) -> None:
        self._settings = settings
        self.path = settings.effective_tenants_file
        self._stamp = FileStamp(self.path, every_s)
        self._state: Stamp | bool = False  # False: never read
        self._registry = TenantRegistry({settings.tenant: default_tenant(settings)})
        self.error: str | None = None
        self.current()

    def current(self) -> TenantRegistry:
        state = self._stamp.read()
        if state != self._state:
            self._state = state
            try:
                self._registry = read_registry(self._settings)
                self.error = None
                log.info("tenants in force: %s", ", ".join(sorted(self._registry.tenants)))
            except ConfigError as exc:
                self.error = str(exc)
                log.error("%s; keeping the previous tenants", exc)
        return self._registry


def upsert_tenant_entry(path: Path, tenant_id: str, entry: Mapping[str, str]) -> bool:
    """Write ``[tenants.<id>]`` into the file unless an entry for the id is already there
    (the operator's edits stay theirs); True when written. Written whole, then renamed."""
    check_tenant_id(tenant_id)
    text = path.read_text(encoding="utf-8") if path.exists() else (
        "# acct2crm tenants: one [tenants.<id>] table per company (see tenants.py)\n"
    )
    existing = tomllib.loads(text).get("tenants", {}) if text.strip() else {}
    if tenant_id in existing:
        return False
    lines = ["", f"[tenants.{tenant_id}]"]
    lines += [f"{key} = {_toml_string(value)}" for key, value in entry.items()]
    write_private(path, text.rstrip("\n") + "\n" + "\n".join(lines) + "\n")
    return True


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
