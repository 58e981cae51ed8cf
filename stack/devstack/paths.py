"""Where every file of the local stack lives, derived from the settings alone.

One place for paths keeps ``up``, ``down`` and ``status`` agreeing on pid files
and logs, and keeps the state folder (``home``) apart from the jar cache that
reruns and fresh clones share.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from acct2crm.settings import Settings

# files shipped inside this package (Maven and Java need real paths)
STACK_ASSETS = Path(__file__).resolve().parent / "assets"
KAFKA_POM = STACK_ASSETS / "maven" / "kafka.pom.xml"
DEBEZIUM_POM = STACK_ASSETS / "maven" / "debezium.pom.xml"
JMX_EXPORTER_POM = STACK_ASSETS / "maven" / "jmx-exporter.pom.xml"
JMX_EXPORTER_CONFIG = STACK_ASSETS / "jmx-exporter.yaml"
JMX_EXPORTER_VERSION = "1.0.1"  # as in jmx-exporter.pom.xml
LOG4J2_CONFIG = STACK_ASSETS / "log4j2.properties"
ACCOUNTING_SQL = STACK_ASSETS / "sql" / "accounting.sql"

DEBEZIUM_PLUGIN_NAME = "debezium-connector-postgres"


@dataclass(frozen=True)
class StackPaths:
    """Files and folders of one local stack (state) and of the jar cache."""

    home: Path
    cache: Path
    kafka_version: str
    debezium_version: str

    @classmethod
    def of(cls, settings: Settings) -> StackPaths:
        return cls(
            home=settings.home.resolve(),
            cache=settings.cache_dir.expanduser().resolve(),
            kafka_version=settings.kafka_version,
            debezium_version=settings.debezium_version,
        )

    # state ------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    def pid_file(self, service: str) -> Path:
        return self.run_dir / f"{service}.pid"

    def log_file(self, service: str) -> Path:
        return self.logs_dir / f"{service}.log"

    @property
    def postgres_dir(self) -> Path:
        """Owned by the ``postgres`` system user when the stack runs as root."""
        return self.home / "postgres"

    @property
    def pg_data(self) -> Path:
        return self.postgres_dir / "data"

    @property
    def pg_socket_dir(self) -> Path:
        return self.postgres_dir / "socket"

    @property
    def kafka_dir(self) -> Path:
        return self.home / "kafka"

    @property
    def kafka_data(self) -> Path:
        return self.kafka_dir / "data"

    @property
    def kafka_config(self) -> Path:
        return self.kafka_dir / "server.properties"

    @property
    def connect_dir(self) -> Path:
        return self.home / "connect"

    @property
    def connect_config(self) -> Path:
        return self.connect_dir / "connect-distributed.properties"

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def connect_secrets(self) -> Path:
        """Properties file read by Connect's FileConfigProvider (mode 600); the same
        file as ``Settings.connect_secrets_file``, which ``connectors apply`` writes."""
        return self.secrets_dir / "connect.properties"

    # jar cache --------------------------------------------------------------
    @property
    def kafka_lib(self) -> Path:
        return self.cache / f"kafka-{self.kafka_version}" / "lib"

    @property
    def plugin_path(self) -> Path:
        """Connect's ``plugin.path``: a folder of plugin folders."""
        return self.cache / f"debezium-{self.debezium_version}" / "plugins"

    @property
    def debezium_plugin(self) -> Path:
        return self.plugin_path / DEBEZIUM_PLUGIN_NAME

    @property
    def jmx_exporter_dir(self) -> Path:
        return self.cache / f"jmx-exporter-{JMX_EXPORTER_VERSION}"

    @property
    def jmx_exporter_jar(self) -> Path:
        return self.jmx_exporter_dir / f"jmx_prometheus_javaagent-{JMX_EXPORTER_VERSION}.jar"
