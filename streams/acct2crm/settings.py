"""The one settings object of acct2crm, read once at start.

Every setting has one name, used both as ``ACCT2CRM_<NAME>`` in the environment
and as ``<name>`` in the TOML config file (``ACCT2CRM_CONFIG``, default
``<home>/acct2crm.toml``). Precedence: environment, then file, then defaults
that work on the local stack. A key the model does not know, or a value it
cannot use, stops the program with a ``ConfigError`` naming the key, where it
came from and what is allowed: a silent default would point the worker at the
wrong place. Nothing else in the project reads the environment (the config
file's own path is found from it first). Secrets are ``SecretStr`` so they
never print by accident.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import pydantic
from pydantic import Field, PrivateAttr, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from acct2crm.config_file import (
    ENV_PREFIX,
    PROJECT_ROOT,
    config_path,
    read_config_file,
)
from acct2crm.errors import ConfigError

# the local stack's well-known password: shown in full wherever a DSN is printed
LOCAL_PG_PASSWORD = "acct2crm-local"  # noqa: S105


def shown_dsn(dsn: str) -> str:
    """A printed DSN for text, which ends up in terminals and logs: a password other than
    the local stack's well-known one (a loopback tunnel to a real database) is masked."""
    parts = urlsplit(dsn)
    if parts.password is None or unquote(parts.password) == LOCAL_PG_PASSWORD:
        return dsn
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:****@{host}"))


# endpoints derived from a local port unless configured; configured = someone else's service
DERIVED_ENDPOINTS = ("kafka_bootstrap", "connect_url", "crm_url")
LOOPBACK_NAMES = ("localhost",)

Port = Annotated[int, Field(ge=1, le=65535)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Name = Annotated[str, Field(min_length=1)]


class Settings(BaseSettings):
    """Everything configurable; defaults are the local stack on loopback."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    # where the local stack keeps state, logs and pids; downloads are cached apart
    home: Path = PROJECT_ROOT / ".acct2crm"
    cache_dir: Path = Path.home() / ".cache" / "acct2crm"
    config: Path | None = None  # the config file; from ACCT2CRM_CONFIG only

    tenant: Name = "default"

    # PostgreSQL (accounting database, and the reference CRM's own database)
    pg_host: Name = "127.0.0.1"
    pg_port: Port = 55432
    pg_database: Name = "accounting"
    pg_user: Name = "acct2crm"
    pg_password: SecretStr = SecretStr(LOCAL_PG_PASSWORD)
    pg_replication_user: Name = "debezium"
    pg_replication_password: SecretStr = SecretStr("debezium-local")
    pg_publication: Name = "acct2crm_customer"
    pg_slot: Name = "acct2crm_customer"
    # the local stack's cap on WAL a replication slot may hold (PostgreSQL's
    # max_slot_wal_keep_size); beyond it the slot is lost, never the disk
    pg_max_slot_wal_keep_size: str = Field(default="4GB", pattern=r"^(-1|\d+(kB|MB|GB|TB)?)$")

    # Kafka (KRaft, one combined broker+controller) and Kafka Connect
    kafka_port: Port = 59092
    kafka_controller_port: Port = 59093
    # the local broker's group.initial.rebalance.delay.ms: how long an empty consumer
    # group waits for more members before its first assignment. Kafka's own default,
    # so workers started together (`up --workers N`) share the partitions from the
    # start; 0 gives a lone worker its partitions 3 s sooner and the first of several
    # every partition until the others join
    kafka_group_initial_rebalance_delay_ms: NonNegativeInt = 3000
    # TLS/SASL for every Kafka client (kafka_security.py); PLAINTEXT on the local stack
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT"] = (
        "PLAINTEXT"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_sasl_password_file: Path | None = None  # first line is the password
    kafka_ssl_ca_file: Path | None = None  # PEM; unset = the system's trusted CAs
    kafka_ssl_cert_file: Path | None = None  # PEM client certificate (mutual TLS)
    kafka_ssl_key_file: Path | None = None  # its PEM private key, unencrypted
    # every topic the project creates (its own, Faust's changelogs, Connect's, Debezium's)
    kafka_replication_factor: PositiveInt = 1
    kafka_min_insync_replicas: PositiveInt = 1
    # local stack only: a SASL_SSL (SCRAM) listener on this port beside PLAINTEXT
    kafka_sasl_ssl_port: Port | None = None
    # host:port[,host:port...]; unset = the local broker on kafka_port
    # (on kafka_sasl_ssl_port when that is set and the protocol is SASL_SSL)
    kafka_bootstrap: str = Field(default=None, validate_default=True)
    connect_port: Port = 58083
    # the local Connect's Prometheus JMX exporter (Debezium and Connect metrics), /metrics
    connect_metrics_port: Port = 58084
    # unset = the local Kafka Connect on connect_port
    connect_url: str = Field(default=None, validate_default=True)
    kafka_version: Name = "4.3.1"
    debezium_version: Name = "3.6.1.Final"
    jvm_heap: str = Field(default="384m", pattern=r"^[0-9]+[kKmMgG]?$")

    # topics
    topic_prefix: Name = "acct2crm"
    commands_topic: Name = "acct2crm.commands"
    results_topic: Name = "acct2crm.results"
    dlq_topic: Name = "acct2crm.dlq"
    # retention.ms of the project's topics: -1 keeps changes however long the CRM
    # is away (R4); a finite value is a promise `status` warns about nearing
    topic_retention_ms: int = Field(default=-1, ge=-1)
    # `status` warns when the oldest unapplied change is older than this share of it
    retention_warn_ratio: float = Field(default=0.8, gt=0, le=1)

    # reference CRM / real CRM
    crm_port: Port = 58080
    # unset = the local reference CRM on crm_port
    crm_url: str = Field(default=None, validate_default=True)
    crm_token: SecretStr = SecretStr("local-dev-token")
    # plain http to a non-loopback CRM sends the token in clear: refused unless set
    crm_allow_insecure_http: bool = False
    crm_timeout_s: PositiveFloat = 10.0
    crm_max_concurrency: PositiveInt = 8
    # our own pacing; 0 = none (Retry-After still honoured)
    crm_rate_limit_per_s: NonNegativeFloat = 0.0
    # writes (and code look-ups) per batch call where the CRM has batches, at most
    # the CRM's own limit (100 for the reference CRM); 0 = single calls only
    crm_batch_size: NonNegativeInt = 100
    crm_retry_base_s: PositiveFloat = 0.2
    crm_retry_cap_s: PositiveFloat = 10.0
    # CRM customers asked per page when seeding the CRM-code table (first start)
    crm_seed_page_size: PositiveInt = 500
    refcrm_rate_limit_per_s: NonNegativeInt = 0  # the reference CRM's own limit; 0 = none
    # the reference CRM's /admin/faults, like its --fault-injection flag; never on by default
    refcrm_fault_injection: bool = False

    # the Faust worker
    worker_port: Port = 56066
    worker_bind: Name = "127.0.0.1"  # address the status page listens on (0.0.0.0 in a container)
    table_store: str = Field(default="memory://", pattern=r"^[a-z]+://")
    # where the worker keeps its tables on disk (rocksdb://); unset: <home>/worker. Two
    # workers on one machine each need their own (a RocksDB file has one owner)
    worker_data_dir: Path | None = None
    # copies each worker keeps of other workers' tables (Faust standbys): faster take-over,
    # but with 2 workers each spent 2-3x the CPU per change applying the other's updates
    table_standby_replicas: NonNegativeInt = 0
    sink_batch_size: PositiveInt = 64
    sink_batch_window_s: NonNegativeFloat = 0.05
    # commands one tenant's lane keeps in memory while it waits; past it, the rest is read back
    lane_max_held: PositiveInt = 10_000
    # changes the change agent routes before one wait for the broker's acknowledgements
    change_batch_size: PositiveInt = 200
    change_batch_window_s: NonNegativeFloat = 0.02
    # a table restore (after a partition moved) that stays still this long restarts the
    # worker (app/recovery_watch.py); 0 = never
    recovery_stall_s: NonNegativeFloat = 30.0
    # the worker's event loop: auto = uvloop where installed (faster), else asyncio's own
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    # the worker's logs: "text" or "json" (one object a line); level debug logs every change
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # sync scope file (TOML); missing file means the default scope
    scope_file: Path | None = None
    # field mapping file (TOML); missing file means the contract's fields, as they are
    mapping_file: Path | None = None

    # many tenants (tenants.py): the operator's registry file, and the change topic's partitions
    tenants_file: Path | None = None
    change_partitions: PositiveInt = 1

    _overrides: frozenset[str] = PrivateAttr(default_factory=frozenset)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            from acct2crm.settings_origins import describe_errors  # noqa: PLC0415 - a cycle

            raise ConfigError(describe_errors(exc, values)) from exc
        self._overrides = frozenset(values)

    @property
    def overrides(self) -> frozenset[str]:
        """Names given in code (tests, the CLI), which win over env and file."""
        return self._overrides

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
        path = config_path()
        if path is not None:
            sources.append(InitSettingsSource(settings_cls, init_kwargs=read_config_file(path)))
        return tuple(sources)

    # validation -----------------------------------------------------------
    @field_validator("kafka_bootstrap", mode="before")
    @classmethod
    def _kafka_bootstrap(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            port = info.data.get("kafka_port", 0)
            if info.data.get("kafka_sasl_ssl_port") and (
                info.data.get("kafka_security_protocol") == "SASL_SSL"
            ):
                port = info.data["kafka_sasl_ssl_port"]
            return f"127.0.0.1:{port}"
        if not isinstance(value, str):
            return value
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(
                    "allowed: host:port[,host:port...] with ports 1-65535 (e.g. kafka:9092)"
                )
        return value

    @field_validator("connect_url", "crm_url", mode="before")
    @classmethod
    def _http_url(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            port = info.data.get("connect_port" if info.field_name == "connect_url" else "crm_port")
            return f"http://127.0.0.1:{port or 0}"
        if not isinstance(value, str):
            return value
        try:
            parts = urlsplit(value)
            port_ok = parts.port is None or 1 <= parts.port <= 65535
        except ValueError:
            port_ok = False
            parts = urlsplit("")
        if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            raise ValueError(
                "allowed: an http:// or https:// URL with a host (e.g. https://crm.example.com)"
            )
        return value.rstrip("/")

    @pydantic.model_validator(mode="after")
    def _kafka_security(self) -> Settings:
        from acct2crm.kafka_security import check  # noqa: PLC0415 - it imports this module

        check(self)
        return self

    # derived endpoints ----------------------------------------------------
    def configured(self, name: str) -> bool:
        """Whether ``name`` was given (env, file or override) rather than left to its default;
        a configured endpoint is someone else's service, never started or stopped here."""
        return name in self.model_fields_set

    @property
    def pg_is_local(self) -> bool:
        """The database is on this machine's loopback (the local stack's)."""
        if self.pg_host in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.pg_host).is_loopback
        except ValueError:
            return False

    @property
    def postgres_dsn(self) -> str:
        """The DSN to print: it connects as printed on the local stack (password included,
        its well-known local one), and carries no password for any other database."""
        user = quote(self.pg_user, safe="")
        if self.pg_is_local:
            user += ":" + quote(self.pg_password.get_secret_value(), safe="")
        host = f"[{self.pg_host}]" if ":" in self.pg_host else self.pg_host
        return f"postgresql://{user}@{host}:{self.pg_port}/{quote(self.pg_database, safe='')}"

    def postgres_conninfo(self, database: str | None = None) -> str:
        """Connection string with the password, for drivers only; never log it."""
        return (
            f"host={self.pg_host} port={self.pg_port} dbname={database or self.pg_database} "
            f"user={self.pg_user} password={self.pg_password.get_secret_value()}"
        )

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

    @property
    def effective_mapping_file(self) -> Path:
        return self.mapping_file or self.home / "mapping.toml"

    @property
    def effective_tenants_file(self) -> Path:
        return self.tenants_file or self.home / "tenants.toml"


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
