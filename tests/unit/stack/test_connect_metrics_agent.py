"""Connect starts with the Prometheus JMX exporter agent, resolved like the other jars."""

from __future__ import annotations

import re
from pathlib import Path

from acct2crm.settings import Settings
from devstack.kafka_connect import jmx_exporter_option
from devstack.paths import JMX_EXPORTER_CONFIG, JMX_EXPORTER_POM, JMX_EXPORTER_VERSION, StackPaths


def test_the_agent_serves_on_loopback_at_the_configured_port(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", cache_dir=tmp_path / "cache",
                        connect_metrics_port=51234)
    paths = StackPaths.of(settings)
    option = jmx_exporter_option(settings, paths)
    assert option == (f"-javaagent:{paths.jmx_exporter_jar}=127.0.0.1:51234:"
                      f"{JMX_EXPORTER_CONFIG}")
    assert JMX_EXPORTER_CONFIG.is_file()


def test_the_pom_and_the_jar_name_agree_on_the_version() -> None:
    pom = JMX_EXPORTER_POM.read_text()
    [version] = re.findall(r"<jmx.exporter.version>([^<]+)<", pom)
    assert version == JMX_EXPORTER_VERSION
    assert "<artifactId>jmx_prometheus_javaagent</artifactId>" in pom
