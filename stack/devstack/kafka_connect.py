"""The local Kafka Connect worker (distributed mode) with the Debezium plugin."""

from __future__ import annotations

import signal
from pathlib import PurePath

import httpx

from acct2crm.kafka_security import connect_topic_settings, connect_worker_properties
from acct2crm.settings import Settings
from devstack import safe_fs
from devstack.java import java_command
from devstack.paths import JMX_EXPORTER_CONFIG, StackPaths
from devstack.processes import find_by_cwd, port_open, spawn, write_pid

STOP_SIGNAL = signal.SIGTERM
MAIN_CLASS = "org.apache.kafka.connect.cli.ConnectDistributed"


def worker_properties(settings: Settings, paths: StackPaths) -> str:
    """Connect's worker configuration (pure)."""
    lines = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": f"{settings.topic_prefix}-connect",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
        "config.storage.topic": f"{settings.topic_prefix}-connect-configs",
        "offset.storage.topic": f"{settings.topic_prefix}-connect-offsets",
        "offset.storage.partitions": "1",
        "status.storage.topic": f"{settings.topic_prefix}-connect-status",
        "status.storage.partitions": "1",
        "offset.flush.interval.ms": "5000",
        "listeners": f"http://127.0.0.1:{settings.connect_port}",
        "rest.advertised.host.name": "127.0.0.1",
        "rest.advertised.port": str(settings.connect_port),
        "plugin.path": str(paths.plugin_path),
        "plugin.discovery": "service_load",
        "topic.creation.enable": "true",
        "config.providers": "file",
        "config.providers.file.class": "org.apache.kafka.common.config.provider.FileConfigProvider",
        "config.providers.file.param.allowed.paths": str(paths.secrets_dir),
        # replication of Connect's topics; TLS/SASL for the worker and its connectors' clients
        **connect_topic_settings(settings),
        **connect_worker_properties(settings),
    }
    header = "# written by acct2crm up; edits are overwritten\n"
    return header + "".join(f"{key}={value}\n" for key, value in lines.items())


def jmx_exporter_option(settings: Settings, paths: StackPaths) -> str:
    """The Prometheus JMX exporter agent: Debezium's and Connect's metrics on loopback."""
    return (
        f"-javaagent:{paths.jmx_exporter_jar}="
        f"127.0.0.1:{settings.connect_metrics_port}:{JMX_EXPORTER_CONFIG}"
    )


def prepare(settings: Settings, paths: StackPaths) -> None:
    safe_fs.ensure_dir(paths.home, PurePath("connect"))
    safe_fs.write_file(paths.home, PurePath("connect", paths.connect_config.name),
                       worker_properties(settings, paths))


def start(settings: Settings, paths: StackPaths) -> int:
    argv = java_command(settings, paths, MAIN_CLASS, str(paths.connect_config))
    argv.insert(1, jmx_exporter_option(settings, paths))
    pid = spawn(argv, log_file=paths.log_file("connect"), cwd=paths.connect_dir)
    write_pid(paths.pid_file("connect"), pid)
    return pid


def find(settings: Settings, paths: StackPaths) -> int | None:
    return find_by_cwd(paths.connect_dir, MAIN_CLASS)


def healthy(settings: Settings, paths: StackPaths) -> bool:
    """The REST API answers the connector list (the herder has joined its group)."""
    if not settings.configured("connect_url") and not port_open(settings.connect_port):
        return False
    try:
        answer = httpx.get(f"{settings.connect_url}/connectors", timeout=3.0)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200
