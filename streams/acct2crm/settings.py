"""The one settings object of acct2crm, read once at start.

Values come from ``ACCT2CRM_*`` environment variables, then an optional TOML
file (``ACCT2CRM_CONFIG``, default ``<home>/acct2crm.toml``), then defaults that
work on the local stack. Nothing else in the project reads the environment.
Secrets are ``SecretStr`` so they never print by accident.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _project_root() -> Path:
    here = Path(__file__).resolve()
    root = here.parents[2]
    return root if (root / "pyproject.toml").exists() else Path.cwd()


PROJECT_ROOT = _project_root()


class Settings(BaseSettings):
    """Everything configurable; defaults are the local stack on loopback."""

    model_config = SettingsConfigDict(env_prefix="ACCT2CRM_", extra="ignore")

    # where the local stack keeps state, logs and pids; downloads are cached apart
    home: Path = PROJECT_ROOT / ".acct2crm"
    cache_dir: Path = Path.home() / ".cache" / "acct2crm"
    config: Path | None = None

    tenant: str = "default"

    # PostgreSQL (accounting database, and the reference CRM's own database)
    pg_host: str = "127.0.0.1"
    pg_port: int = 55432
    pg_database: str = "accounting"
    pg_user: str = "acct2crm"
    pg_password: SecretStr = SecretStr("acct2crm-local")
    pg_replication_user: str = "debezium"
    pg_replication_password: SecretStr = SecretStr("debezium-local")
    pg_publication: str = "acct2crm_customer"
    pg_slot: str = "acct2crm_customer"
    # the local stack's cap on WAL a replication slot may hold (PostgreSQL's
    # max_slot_wal_keep_size); beyond it the slot is lost, never the disk
    pg_max_slot_wal_keep_size: str = Field(default="4GB", pattern=r"^(-1|\d+(kB|MB|GB|TB)?)$")

    # Kafka (KRaft, one combined broker+controller) and Kafka Connect
    kafka_port: int = 59092
    kafka_controller_port: int = 59093
    kafka_bootstrap_override: str | None = Field(default=None, alias="ACCT2CRM_KAFKA_BOOTSTRAP")
    connect_port: int = 58083
    connect_url_override: str | None = Field(default=None, alias="ACCT2CRM_CONNECT_URL")
    kafka_version: str = "4.3.1"
    debezium_version: str = "3.6.1.Final"
    jvm_heap: str = "384m"

    # topics
    topic_prefix: str = "acct2crm"
    commands_topic: str = "acct2crm.commands"
    results_topic: str = "acct2crm.results"
    dlq_topic: str = "acct2crm.dlq"
    # retention.ms of the project's topics: -1 keeps changes however long the CRM
    # is away (R4); a finite value is a promise `status` warns about nearing
    topic_retention_ms: int = -1
    # `status` warns when the oldest unapplied change is older than this share of it
    retention_warn_ratio: float = 0.8

    # reference CRM / real CRM
    crm_port: int = 58080
    crm_url_override: str | None = Field(default=None, alias="ACCT2CRM_CRM_URL")
    crm_token: SecretStr = SecretStr("local-dev-token")
    crm_timeout_s: float = 10.0
    crm_max_concurrency: int = 8
    crm_rate_limit_per_s: float = 0.0  # our own pacing; 0 = none (Retry-After still honoured)
    crm_retry_base_s: float = 0.2
    crm_retry_cap_s: float = 10.0
    refcrm_rate_limit_per_s: int = 0  # the reference CRM's own limit; 0 = none
    # the reference CRM's /admin/faults, like its --fault-injection flag; never on by default
    refcrm_fault_injection: bool = False

    # the Faust worker
    worker_port: int = 56066
    worker_bind: str = "127.0.0.1"  # address the status page listens on (0.0.0.0 in a container)
    table_store: str = "memory://"
    sink_batch_size: int = 64
    sink_batch_window_s: float = 0.05

    # sync scope file (TOML); missing file means the default scope
    scope_file: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_path()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # derived endpoints ----------------------------------------------------
    @property
    def postgres_dsn(self) -> str:
        """DSN without the password: safe to show."""
        return (
            f"postgresql://{self.pg_user}@{self.pg_host}:{self.pg_port}/{self.pg_database}"
        )

    def postgres_conninfo(self, database: str | None = None) -> str:
        """Connection string with the password, for drivers only; never log it."""
        return (
            f"host={self.pg_host} port={self.pg_port} dbname={database or self.pg_database} "
            f"user={self.pg_user} password={self.pg_password.get_secret_value()}"
        )

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka_bootstrap_override or f"127.0.0.1:{self.kafka_port}"

    @property
    def connect_url(self) -> str:
        return self.connect_url_override or f"http://127.0.0.1:{self.connect_port}"

    @property
    def crm_url(self) -> str:
        return self.crm_url_override or f"http://127.0.0.1:{self.crm_port}"

    @property
    def status_url(self) -> str:
        return f"http://127.0.0.1:{self.worker_port}/status"

    @property
    def change_topic(self) -> str:
        return f"{self.topic_prefix}.accounting.customer"

    @property
    def connect_secrets_file(self) -> Path:
        """Properties file Connect's FileConfigProvider reads the database password from."""
        return self.home / "secrets" / "connect.properties"

    @property
    def effective_scope_file(self) -> Path:
        return self.scope_file or self.home / "scope.toml"


def _config_path() -> Path | None:
    explicit = os.environ.get("ACCT2CRM_CONFIG")
    if explicit:
        return Path(explicit)
    home = Path(os.environ.get("ACCT2CRM_HOME", str(PROJECT_ROOT / ".acct2crm")))
    candidate = home / "acct2crm.toml"
    return candidate if candidate.exists() else None


_settings: Settings | None = None


def get_settings(**overrides: Any) -> Settings:
    """The process-wide settings, read once; overrides are for tests and the CLI."""
    global _settings  # noqa: PLW0603
    if overrides:
        return Settings(**overrides)
    if _settings is None:
        _settings = Settings()
    return _settings


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment between runs)."""
    global _settings  # noqa: PLW0603
    _settings = None
