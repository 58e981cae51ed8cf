"""The Kafka, Connect and Debezium jars, resolved by Maven into the jar cache.

Maven (``dependency:copy-dependencies``) does the resolving so the versions in
``stack/maven/*.pom.xml`` are the whole truth and ``~/.m2`` is reused. A marker
file holding the pom's hash says a folder is complete; a missing or stale
marker, or a changed pom, fetches again into a fresh folder that replaces the
old one only once Maven succeeded.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from acct2crm.errors import StackError
from acct2crm.settings import get_settings
from devstack.fetch_progress import run_maven
from devstack.paths import (
    DEBEZIUM_POM,
    JMX_EXPORTER_POM,
    JMX_EXPORTER_VERSION,
    KAFKA_POM,
    StackPaths,
)

MARKER = ".acct2crm-complete"
FETCH_TIMEOUT_S = 1200.0

# Debezium lists the Kafka client and Connect API it was built against; the
# Connect worker provides those (and the client's compression libraries, whose
# native code must not load twice), so the plugin folder carries no copies.
_PROVIDED_BY_CONNECT = "org.apache.kafka,org.slf4j"
_PROVIDED_ARTIFACTS = "lz4-java,snappy-java,zstd-jni"


def _marker_text(pom: Path, version: str) -> str:
    recipe = pom.read_bytes() + (_PROVIDED_BY_CONNECT + _PROVIDED_ARTIFACTS).encode()
    digest = hashlib.sha256(recipe).hexdigest()[:16]
    return f"{version} {digest}\n"


def is_complete(folder: Path, pom: Path, version: str) -> bool:
    marker = folder / MARKER
    try:
        return marker.read_text() == _marker_text(pom, version)
    except OSError:
        return False


def jars_ready(paths: StackPaths) -> bool:
    return (
        is_complete(paths.kafka_lib, KAFKA_POM, paths.kafka_version)
        and is_complete(paths.debezium_plugin, DEBEZIUM_POM, paths.debezium_version)
        and is_complete(paths.jmx_exporter_dir, JMX_EXPORTER_POM, JMX_EXPORTER_VERSION)
    )


def ensure_jars(paths: StackPaths, echo: Callable[[str], None] = print) -> bool:
    """Fetch whatever is missing; True when something was fetched."""
    fetched = False
    wanted: tuple[tuple[Path, Path, str, dict[str, str], str | None, str], ...] = (
        (paths.kafka_lib, KAFKA_POM, paths.kafka_version, {"kafka.version": paths.kafka_version},
         None, "Kafka and Connect"),
        (paths.debezium_plugin, DEBEZIUM_POM, paths.debezium_version,
         {"debezium.version": paths.debezium_version}, _PROVIDED_BY_CONNECT,
         "Debezium PostgreSQL connector"),
        (paths.jmx_exporter_dir, JMX_EXPORTER_POM, JMX_EXPORTER_VERSION, {}, None,
         "Prometheus JMX exporter agent"),
    )
    for folder, pom, version, props, exclude, label in wanted:
        if is_complete(folder, pom, version):
            continue
        echo(f"jars: fetching {label} {version} with Maven into {folder} (first run only)")
        _fetch(folder, pom, version, props, exclude)
        fetched = True
    return fetched


def maven_command(
    pom: Path, output: Path, properties: dict[str, str], exclude_groups: str | None
) -> list[str]:
    """The Maven invocation that copies ``pom``'s runtime classpath into ``output``."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "Maven (mvn) is not installed: run `make install` or apt-get install maven"
        )
    argv = [
        mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
        f"-DoutputDirectory={output}", "-DincludeScope=runtime",
    ]
    argv += [f"-D{key}={value}" for key, value in properties.items()]
    if exclude_groups:
        argv.append(f"-DexcludeGroupIds={exclude_groups}")
        argv.append(f"-DexcludeArtifactIds={_PROVIDED_ARTIFACTS}")
    return argv


def _fetch(
    folder: Path, pom: Path, version: str, properties: dict[str, str], exclude: str | None
) -> None:
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    argv = maven_command(pom, staging, properties, exclude)
    try:
        done = run_maven(argv, staging, pom.stem, FETCH_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise StackError(
            f"Maven did not finish fetching jars in {FETCH_TIMEOUT_S:.0f}s "
            "(is Maven Central reachable?)"
        ) from exc
    if done.returncode != 0:
        raise StackError(f"Maven could not fetch the jars of {pom.name}: {_maven_reason(done)}")
    if not any(staging.glob("*.jar")):
        raise StackError(f"Maven fetched no jar for {pom.name}")
    (staging / MARKER).write_text(_marker_text(pom, version))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)


def _maven_reason(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines()]
    errors = [line for line in lines if line.startswith("[ERROR]") and len(line) > 8]
    text = errors[0] if errors else (lines[-1] if lines else f"exit code {done.returncode}")
    hint = ""
    if any(w in text for w in ("transfer", "resolve", "UnknownHost", "Connect", "Network")):
        hint = " (is Maven Central reachable?)"
    return text[:400] + hint


def main() -> None:
    """``python -m devstack.jars``: fetch the jars (used by ``make install``)."""
    paths = StackPaths.of(get_settings())
    if not ensure_jars(paths):
        print(f"jars: cached in {paths.cache}")


if __name__ == "__main__":
    main()
