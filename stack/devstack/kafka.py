"""The local Kafka: one KRaft node that is both broker and controller.

Everything is sized for one machine: one partition per topic by default,
replication factor 1 for every internal topic, loopback listeners only
(PLAINTEXT, plus SASL_SSL with SCRAM when ``kafka_sasl_ssl_port`` is set:
see kafka_tls.py).
"""

from __future__ import annotations

import base64
import signal
import subprocess
import uuid
from pathlib import PurePath

from acct2crm.errors import StackError
from acct2crm.kafka_io import admin_client
from acct2crm.settings import Settings
from devstack import kafka_tls, safe_fs
from devstack.java import java_command
from devstack.paths import StackPaths
from devstack.processes import find_by_cwd, port_open, spawn, write_pid

STOP_SIGNAL = signal.SIGTERM
MAIN_CLASS = "kafka.Kafka"
FORMAT_TOOL = "kafka.tools.StorageTool"
FORMAT_TIMEOUT_S = 180.0


def server_properties(settings: Settings, paths: StackPaths) -> str:
    """The broker's configuration (pure: same settings, same text)."""
    broker = f"127.0.0.1:{settings.kafka_port}"
    controller = f"127.0.0.1:{settings.kafka_controller_port}"
    # kafka_sasl_ssl_port: a second listener, SASL_SSL with SCRAM (kafka_tls.py)
    secured = (
        f",{kafka_tls.LISTENER}://127.0.0.1:{settings.kafka_sasl_ssl_port}"
        if settings.kafka_sasl_ssl_port is not None else ""
    )
    secured_map = f",{kafka_tls.LISTENER}:{kafka_tls.LISTENER}" if secured else ""
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": controller,
        "listeners": f"PLAINTEXT://{broker},CONTROLLER://{controller}{secured}",
        "advertised.listeners": f"PLAINTEXT://{broker},CONTROLLER://{controller}{secured}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT" + secured_map,
        "log.dirs": str(paths.kafka_data),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "5",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "5",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "auto.create.topics.enable": "true",
        "group.initial.rebalance.delay.ms": str(settings.kafka_group_initial_rebalance_delay_ms),
        "num.network.threads": "2",
        "num.io.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
        "log.retention.hours": "168",
        **kafka_tls.listener_properties(settings, paths),
    }
    header = "# written by acct2crm up; edits are overwritten\n"
    return header + "".join(f"{key}={value}\n" for key, value in lines.items())


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID, URL-safe base64 without padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def prepare(settings: Settings, paths: StackPaths) -> None:
    """Write the configuration; format the storage once (KRaft, standalone)."""
    safe_fs.ensure_dir(paths.home, PurePath("kafka"))
    if settings.kafka_sasl_ssl_port is not None:
        kafka_tls.ensure_certificates(paths)
    safe_fs.write_file(paths.home, PurePath("kafka", paths.kafka_config.name),
                       server_properties(settings, paths))
    if (paths.kafka_data / "meta.properties").exists():
        return
    argv = java_command(
        settings, paths, FORMAT_TOOL, "format", "--standalone",
        "-t", new_cluster_id(), "-c", str(paths.kafka_config),
        *kafka_tls.format_arguments(settings),
    )
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=FORMAT_TIMEOUT_S, check=False,
            cwd=paths.kafka_dir, umask=0o077,
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError("Kafka storage format did not finish in time") from exc
    if done.returncode != 0:
        output = (done.stderr + done.stdout).strip().splitlines()
        raise StackError(f"Kafka storage format failed: {output[-1] if output else 'no output'}")


def start(settings: Settings, paths: StackPaths) -> int:
    argv = java_command(settings, paths, MAIN_CLASS, str(paths.kafka_config))
    pid = spawn(argv, log_file=paths.log_file("kafka"), cwd=paths.kafka_dir)
    write_pid(paths.pid_file("kafka"), pid)
    return pid


def find(settings: Settings, paths: StackPaths) -> int | None:
    return find_by_cwd(paths.kafka_dir, MAIN_CLASS)


def healthy(settings: Settings, paths: StackPaths) -> bool:
    """The broker answers a metadata request."""
    if not settings.configured("kafka_bootstrap") and not port_open(settings.kafka_port):
        return False
    try:
        metadata = admin_client(settings).list_topics(timeout=3)
    except Exception:  # any client failure means "not yet"
        return False
    return bool(metadata.brokers)
