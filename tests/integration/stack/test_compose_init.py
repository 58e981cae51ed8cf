"""docker-compose.yml's replication init script, run for real against the test
stack's PostgreSQL (as the image would run it, after compose's interpolation),
with a replication password full of what SQL and shells treat specially."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator

import psycopg
import pytest
import yaml

from acct2crm.settings import Settings
from devstack import postgres
from devstack.paths import StackPaths
from tests.unit.stack.test_compose import COMPOSE, interpolate

pytestmark = pytest.mark.integration

ODD_PASSWORD = "it's \"odd\" $HOME `id` \\ ; DROP TABLE x; --"
PROBE_ROLE = "debezium_probe"
PROBE_PUBLICATION = "acct2crm_probe_pub"


def _superuser(settings: Settings) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        postgres.superuser_conninfo(settings, StackPaths.of(settings), settings.pg_database),
        autocommit=True,
    )


@pytest.fixture
def probe_names(stack_settings: Settings) -> Iterator[None]:
    yield
    with _superuser(stack_settings) as conn:
        conn.execute(f"DROP PUBLICATION IF EXISTS {PROBE_PUBLICATION}")
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [PROBE_ROLE]).fetchone():
            conn.execute(f"DROP OWNED BY {PROBE_ROLE}")
            conn.execute(f"DROP ROLE {PROBE_ROLE}")


def test_the_replication_role_logs_in_with_an_odd_password(
    stack_settings: Settings, probe_names: None
) -> None:
    env = {"ACCT2CRM_PG_REPLICATION_PASSWORD": ODD_PASSWORD}
    text = interpolate(COMPOSE.read_text(), env).replace("$$", "$")
    script = yaml.safe_load(text)["configs"]["postgres-replication"]["content"]
    # its own role and publication, beside the stack's real ones
    script = script.replace("debezium", PROBE_ROLE).replace("acct2crm_customer", PROBE_PUBLICATION)
    paths = StackPaths.of(stack_settings)
    with tempfile.TemporaryDirectory() as pgdata:  # where the script appends to pg_hba.conf
        os.chmod(pgdata, 0o777)
        run_env = {
            **os.environ, **env, "PGDATA": pgdata,
            "POSTGRES_USER": postgres.SUPERUSER, "POSTGRES_DB": stack_settings.pg_database,
            "PGHOST": str(postgres.socket_dir(paths)), "PGPORT": str(stack_settings.pg_port),
        }
        argv = ["bash", "-c", script]
        if os.geteuid() == 0:  # the superuser is trusted on the socket for the postgres user
            argv = ["runuser", "-u", postgres.SYSTEM_USER, "--preserve-environment", "--", *argv]
        done = subprocess.run(argv, env=run_env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    with psycopg.connect(
        host=stack_settings.pg_host, port=stack_settings.pg_port,
        dbname=stack_settings.pg_database, user=PROBE_ROLE, password=ODD_PASSWORD,
    ) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (PROBE_ROLE,)
