"""The accounting PostgreSQL: a private cluster of the Debian server binaries.

``initdb`` and the server refuse to run as root, and this project's machines
run as root, so as root every server command runs as the ``postgres`` system
user (``runuser``) on a folder it owns; as anyone else it runs directly. The
cluster listens on loopback only, with ``wal_level=logical`` for Debezium.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from acct2crm.errors import StackError
from acct2crm.settings import Settings
from devstack.paths import ACCOUNTING_SQL, StackPaths
from devstack.processes import last_error_line, port_open, write_pid

STOP_SIGNAL = signal.SIGINT  # PostgreSQL's "fast" shutdown: ends sessions, checkpoints
SUPERUSER = "postgres"
SYSTEM_USER = "postgres"


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", SYSTEM_USER, "--", *argv] if _running_as_root() else argv


def pg_bin(name: str) -> str:
    """Path of a PostgreSQL server program (newest Debian version first)."""
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise StackError(
            f"PostgreSQL server program {name!r} not found: apt-get install postgresql "
            "(or run `make install`)"
        )
    return found


def cluster_dir(paths: StackPaths) -> Path:
    """The cluster's folder: in the state folder, unless ``postgres`` cannot reach it.

    A state folder under an unreadable parent (a clone in /root, mode 700)
    cannot hold a cluster owned by another user; the cluster then lives in
    /var/tmp, named after the state folder so each home keeps its own.
    """
    if not _running_as_root() or _owner_can_reach(paths.home):
        return paths.postgres_dir
    tag = hashlib.sha256(str(paths.home).encode()).hexdigest()[:10]
    return Path("/var/tmp") / f"acct2crm-postgres-{tag}"  # noqa: S108 - owned, per home


def _owner_can_reach(folder: Path) -> bool:
    probe = folder
    while not probe.exists():
        probe = probe.parent
    done = subprocess.run(
        _as_owner(["test", "-x", str(probe)]), capture_output=True, check=False
    )
    return done.returncode == 0


def data_dir(paths: StackPaths) -> Path:
    return cluster_dir(paths) / "data"


def socket_dir(paths: StackPaths) -> Path:
    return cluster_dir(paths) / "socket"


def _own(path: Path) -> None:
    if _running_as_root():
        shutil.chown(path, SYSTEM_USER, SYSTEM_USER)


def server_conf(settings: Settings, paths: StackPaths) -> str:
    """The settings acct2crm adds to the cluster's own postgresql.conf."""
    return "\n".join(
        [
            "# written by acct2crm up; edits are overwritten",
            f"listen_addresses = '{settings.pg_host}'",
            f"port = {settings.pg_port}",
            f"unix_socket_directories = '{socket_dir(paths)}'",
            "wal_level = logical",
            "max_replication_slots = 10",
            "max_wal_senders = 10",
            # a slot whose reader stopped holds at most this much WAL, then is given up
            # (`acct2crm status` says so) rather than filling the accounting disk
            f"max_slot_wal_keep_size = '{settings.pg_max_slot_wal_keep_size}'",
            "max_connections = 60",
            "shared_buffers = 64MB",
            "password_encryption = 'scram-sha-256'",
            "log_min_messages = warning",
            "",
        ]
    )


HBA_CONF = """# written by acct2crm up; edits are overwritten
# the superuser only through the private socket folder (mode 700)
local   all          postgres                     trust
local   all          all                          scram-sha-256
host    all          all         127.0.0.1/32     scram-sha-256
host    replication  all         127.0.0.1/32     scram-sha-256
"""


def prepare(settings: Settings, paths: StackPaths) -> None:
    """Create the cluster once (initdb) and (re)write its configuration."""
    root = cluster_dir(paths)
    root.mkdir(parents=True, exist_ok=True)
    _own(root)
    sockets = socket_dir(paths)
    sockets.mkdir(mode=0o700, exist_ok=True)
    _own(sockets)
    data = data_dir(paths)
    if not (data / "PG_VERSION").exists():
        shutil.rmtree(data, ignore_errors=True)
        done = subprocess.run(
            _as_owner([
                pg_bin("initdb"), "-D", str(data), "-U", SUPERUSER, "-E", "UTF8",
                "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256",
            ]),
            capture_output=True, text=True, check=False,
        )
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise StackError(f"PostgreSQL initdb failed in {data}: {reason}")
    _write_owned(data / "acct2crm.conf", server_conf(settings, paths))
    _write_owned(data / "pg_hba.conf", HBA_CONF)
    main_conf = data / "postgresql.conf"
    include = "include_if_exists = 'acct2crm.conf'"
    if include not in main_conf.read_text():
        with main_conf.open("a") as handle:
            handle.write(f"\n{include}\n")


def _write_owned(path: Path, text: str) -> None:
    path.write_text(text)
    _own(path)


def start(settings: Settings, paths: StackPaths) -> int:
    """Start the server (pg_ctl waits until it accepts connections); its pid."""
    log = paths.log_file("postgres")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    _own(log)
    data = data_dir(paths)
    done = subprocess.run(
        _as_owner([pg_bin("pg_ctl"), "start", "-D", str(data), "-l", str(log), "-w", "-t", "90"]),
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        reason = last_error_line(log) or done.stderr.strip() or done.stdout.strip()
        raise StackError(f"PostgreSQL refused to start: {reason}")
    pid = int((data / "postmaster.pid").read_text().split()[0])
    write_pid(paths.pid_file("postgres"), pid)
    return pid


def superuser_conninfo(settings: Settings, paths: StackPaths, database: str = "postgres") -> str:
    return (
        f"host={socket_dir(paths)} port={settings.pg_port} dbname={database} "
        f"user={SUPERUSER} connect_timeout=3"
    )


def healthy(settings: Settings, paths: StackPaths) -> bool:
    """Accepting TCP connections on loopback and answering a query."""
    if not port_open(settings.pg_port, settings.pg_host):
        return False
    try:
        with psycopg.connect(superuser_conninfo(settings, paths), autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def provision(settings: Settings, paths: StackPaths) -> None:
    """Roles, database, table, grants and publication; safe to run on every ``up``."""
    app_role, repl_role = settings.pg_user, settings.pg_replication_user
    try:
        with psycopg.connect(superuser_conninfo(settings, paths), autocommit=True) as conn:
            _ensure_role(conn, app_role, settings.pg_password.get_secret_value(), False)
            _ensure_role(
                conn, repl_role, settings.pg_replication_password.get_secret_value(), True
            )
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (settings.pg_database,)
            ).fetchone()
            if exists is None:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(settings.pg_database), sql.Identifier(app_role)
                    )
                )
        conninfo = superuser_conninfo(settings, paths, settings.pg_database)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(app_role)))
            conn.execute(ACCOUNTING_SQL.read_text())
            conn.execute(
                sql.SQL("GRANT USAGE ON SCHEMA accounting TO {}").format(sql.Identifier(repl_role))
            )
            conn.execute(
                sql.SQL("GRANT SELECT ON accounting.customer TO {}").format(
                    sql.Identifier(repl_role)
                )
            )
            conn.execute(
                sql.SQL("GRANT USAGE ON SCHEMA acct2crm TO {}").format(sql.Identifier(repl_role))
            )
            conn.execute(
                sql.SQL("GRANT SELECT, INSERT, UPDATE ON acct2crm.heartbeat TO {}").format(
                    sql.Identifier(repl_role)
                )
            )
            has_publication = conn.execute(
                "SELECT 1 FROM pg_publication WHERE pubname = %s", (settings.pg_publication,)
            ).fetchone()
            if has_publication is None:
                conn.execute(
                    sql.SQL("CREATE PUBLICATION {} FOR TABLE accounting.customer").format(
                        sql.Identifier(settings.pg_publication)
                    )
                )
            # the heartbeat's writes must reach Debezium (it filters them out by
            # table.include.list) or the slot never moves while customers are quiet
            has_heartbeat = conn.execute(
                "SELECT 1 FROM pg_publication_tables WHERE pubname = %s "
                "AND schemaname = 'acct2crm' AND tablename = 'heartbeat'",
                (settings.pg_publication,),
            ).fetchone()
            if has_heartbeat is None:
                conn.execute(
                    sql.SQL("ALTER PUBLICATION {} ADD TABLE acct2crm.heartbeat").format(
                        sql.Identifier(settings.pg_publication)
                    )
                )
    except psycopg.Error as exc:
        raise StackError(f"PostgreSQL refused to set up the accounting database: {exc}") from exc


def _ensure_role(conn: psycopg.Connection[tuple[object, ...]], name: str, password: str,
                 replication: bool) -> None:
    """Create the login role, or bring its password and attributes up to date."""
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    attributes = "LOGIN REPLICATION" if replication else "LOGIN"
    conn.execute(
        sql.SQL(f"{verb} ROLE {{}} WITH {attributes} PASSWORD {{}}").format(
            sql.Identifier(name), sql.Literal(password)
        )
    )
