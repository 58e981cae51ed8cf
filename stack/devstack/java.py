"""How the stack runs its JVMs: the java binary, a modest heap, the cached classpath.

The machine has two cores for everything, so each JVM gets a small heap, the
serial collector and only the quick JIT tier: start-up time matters more here
than peak throughput.
"""

from __future__ import annotations

import shutil

from acct2crm.errors import StackError
from acct2crm.settings import Settings
from devstack.paths import LOG4J2_CONFIG, StackPaths


def java_bin() -> str:
    found = shutil.which("java")
    if found is None:
        raise StackError("java is not installed: a JDK 17+ is needed (run `make install`)")
    return found


def java_command(settings: Settings, paths: StackPaths, main_class: str, *args: str) -> list[str]:
    """``java`` with the stack's JVM options and the Kafka classpath."""
    return [
        java_bin(),
        f"-Xmx{settings.jvm_heap}",
        "-Xms64m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
        f"-Dkafka.logs.dir={paths.logs_dir}",
        "-cp",
        f"{paths.kafka_lib}/*",
        main_class,
        *args,
    ]
