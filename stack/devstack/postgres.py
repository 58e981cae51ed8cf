"""The accounting PostgreSQL: a private cluster of the Debian server binaries.

``initdb`` and the server refuse to run as root, and this project's machines
run as root, so as root every server command runs as the ``postgres`` system
user (``runuser``) on a folder it owns; as anyone else it runs directly. The
cluster listens on loopback only, with ``wal_level=logical`` for Debezium.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path, PurePath

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from acct2crm.errors import StackError
from acct2crm.settings import Settings
from devstack import safe_fs
from devstack.paths import ACCOUNTING_SQL, StackPaths
from devstack.processes import is_alive, last_error_line, port_open, stop, write_pid

STOP_SIGNAL = signal.SIGINT  # PostgreSQL's "fast" shutdown: ends sessions, checkpoints
SUPERUSER = "postgres"
SYSTEM_USER = "postgres"
LOCATION_FILE = "postgres.location"  # names the private cluster folder, when there is one
PRIVATE_BASE = "/var/tmp"  # noqa: S108 - mkdtemp below it: random name, root's, checked


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
    """The cluster's folder: ``<home>/postgres``, or the private folder ``prepare`` recorded.

    Reads only (status and health checks call it); ``prepare`` decides and creates.
    """
    recorded = _recorded_private_root(paths)
    return paths.postgres_dir if recorded is None else recorded / "cluster"


def _recorded_private_root(paths: StackPaths) -> Path | None:
    try:
        text = safe_fs.read_file(paths.home, PurePath(LOCATION_FILE))
    except StackError:
        return None
    return Path(text.strip()) if text and text.strip() else None


def ensure_cluster_dir(paths: StackPaths) -> Path:
    """Create or check the cluster's folder, owned by the server's user, mode 700.

    As root, a state folder the ``postgres`` user cannot reach (a clone under
    /root or under a ``mktemp -d`` folder) cannot hold its cluster: the cluster
    then lives in a private folder made by ``mkdtemp`` under /var/tmp (random
    name, root's, mode 711), recorded in ``<home>/postgres.location``. A
    recorded folder is used only while it is still root's, a real folder, and
    not writable by others; anything else is refused, never followed.
    """
    owner = _owner_ids()
    if not _running_as_root():
        safe_fs.ensure_dir(paths.home, PurePath("postgres"))
        return paths.postgres_dir
    recorded = _recorded_private_root(paths)
    if recorded is None and _owner_can_reach(paths.home.parent):
        safe_fs.ensure_private_root(paths.home, 0o711)
        safe_fs.ensure_dir(paths.home, PurePath("postgres"), owner=owner)
        return paths.postgres_dir
    safe_fs.ensure_private_root(paths.home, 0o700)
    if recorded is None or not recorded.exists():
        recorded = Path(tempfile.mkdtemp(prefix="acct2crm-postgres-", dir=PRIVATE_BASE))
        os.chmod(recorded, 0o711)  # noqa: S103 - the server's user may pass, not list
        safe_fs.write_file(paths.home, PurePath(LOCATION_FILE), f"{recorded}\n")
    safe_fs.check_private_root(recorded)
    safe_fs.ensure_dir(recorded, PurePath("cluster"), owner=owner)
    return recorded / "cluster"


def home_mode(paths: StackPaths) -> int:
    """700, or 711 as root unless the cluster lives in a private folder (the server's
    user may then pass through the state folder, never list or read it)."""
    if _running_as_root() and _recorded_private_root(paths) is None:
        return 0o711
    return 0o700


def _owner_ids() -> tuple[int, int]:
    if not _running_as_root():
        return os.geteuid(), os.getegid()
    record = pwd.getpwnam(SYSTEM_USER)
    return record.pw_uid, record.pw_gid


def _owner_can_reach(folder: Path) -> bool:
    probe = folder
    while not probe.exists():
        probe = probe.parent
    done = subprocess.run(
        _as_owner(["test", "-x", str(probe)]), capture_output=True, check=False, cwd="/"
    )
    return done.returncode == 0


def data_dir(paths: StackPaths) -> Path:
    return cluster_dir(paths) / "data"


def socket_dir(paths: StackPaths) -> Path:
    return cluster_dir(paths) / "socket"


def server_conf(settings: Settings, paths: StackPaths) -> str:
    """The settings acct2crm adds to the cluster's own postgresql.conf."""
    return "\n".join(
        [
            "# written by acct2crm up; edits are overwritten",
            f"listen_addresses = '{settings.pg_host}'",
            f"port = {settings.pg_port}",
            f"unix_socket_directories = '{_conf_quote(str(socket_dir(paths)))}'",
            "wal_level = logical",
            "max_replication_slots = 40",  # one per tenant (acct2crm tenants add)
            "max_wal_senders = 40",
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


def _conf_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "''")


HBA_CONF = """# written by acct2crm up; edits are overwritten
# the superuser only through the private socket folder (mode 700)
local   all          postgres                     trust
local   all          all                          scram-sha-256
host    all          all         127.0.0.1/32     scram-sha-256
host    replication  all         127.0.0.1/32     scram-sha-256
"""


def prepare(settings: Settings, paths: StackPaths) -> None:
    """Create the cluster once (initdb) and (re)write its configuration, never through a link."""
    root = ensure_cluster_dir(paths)
    owner = _owner_ids()
    safe_fs.ensure_dir(root, PurePath("socket"), owner=owner)
    if safe_fs.read_file(root, PurePath("data/PG_VERSION"), owner=owner) is None:
        # a half-made cluster from an interrupted initdb; removed as its owner
        _run_as_owner(["rm", "-rf", "--", "data"], root)
        done = _run_as_owner(
            [pg_bin("initdb"), "-D", str(root / "data"), "-U", SUPERUSER, "-E", "UTF8",
             "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256"],
            root,
        )
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise StackError(f"PostgreSQL initdb failed in {root / 'data'}: {reason}")
    safe_fs.write_file(root, PurePath("data/acct2crm.conf"), server_conf(settings, paths),
                       owner=owner)
    safe_fs.write_file(root, PurePath("data/pg_hba.conf"), HBA_CONF, owner=owner)
    safe_fs.append_line_once(root, PurePath("data/postgresql.conf"),
                             "include_if_exists = 'acct2crm.conf'", owner=owner)


def _run_as_owner(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a server program as the cluster's user, from a folder that user may enter."""
    return subprocess.run(
        _as_owner(argv), capture_output=True, text=True, check=False, cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def start(settings: Settings, paths: StackPaths) -> int:
    """Start the server (pg_ctl waits until it accepts connections); its pid.

    The log is opened here (root's, mode 600) and handed to the server as its
    output, so the server's user never needs to reach the state folder. If the
    start fails or is interrupted, a server it left running is stopped.
    """
    root = cluster_dir(paths)
    log = paths.log_file("postgres")
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        done = subprocess.run(
            _as_owner([pg_bin("pg_ctl"), "start", "-D", str(root / "data"), "-w", "-t", "90"]),
            stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, cwd=root, check=False,
        )
    except BaseException:
        _stop_unrecorded(paths)
        raise
    finally:
        os.close(fd)
    pid = server_pid(paths)
    if done.returncode != 0 or pid is None:
        _stop_unrecorded(paths)
        raise StackError(f"PostgreSQL refused to start: {last_error_line(log) or 'no output'}")
    write_pid(paths.pid_file("postgres"), pid)
    return pid


def _postmaster_lines(paths: StackPaths) -> list[str]:
    try:
        text = safe_fs.read_file(cluster_dir(paths), PurePath("data/postmaster.pid"),
                                 owner=_owner_ids())
    except StackError:
        return []
    return (text or "").splitlines()


def server_pid(paths: StackPaths) -> int | None:
    """The running server of this cluster, from its own ``postmaster.pid``."""
    lines = _postmaster_lines(paths)
    try:
        pid = int(lines[0])
    except (IndexError, ValueError):
        return None
    return pid if is_alive(pid) else None


def stopping(settings: Settings, paths: StackPaths) -> bool:
    """The server was told to stop and has not exited yet."""
    lines = _postmaster_lines(paths)
    return len(lines) > 7 and lines[7].strip() == "stopping" and server_pid(paths) is not None


def _stop_unrecorded(paths: StackPaths) -> None:
    pid = server_pid(paths)
    if pid is not None:
        stop(pid, sig=STOP_SIGNAL)


def superuser_conninfo(settings: Settings, paths: StackPaths, database: str = "postgres") -> str:
    return make_conninfo(
        host=str(socket_dir(paths)), port=settings.pg_port, dbname=database, user=SUPERUSER,
        connect_timeout=3,
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
            # lets `status` see when Connect's walsender (another role's session) started
            conn.execute(
                sql.SQL("GRANT pg_read_all_stats TO {}").format(sql.Identifier(app_role))
            )
    except psycopg.Error as exc:
        raise StackError(f"PostgreSQL refused to set up the accounting database: {exc}") from exc
    provision_database(settings, paths, settings.pg_database)


def provision_database(settings: Settings, paths: StackPaths, database: str) -> bool:
    """One accounting database (the default one, or a tenant's): its table, grants,
    heartbeat and publication, as the connector expects them; True if it was new."""
    app_role, repl_role = settings.pg_user, settings.pg_replication_user
    try:
        with psycopg.connect(superuser_conninfo(settings, paths), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
            ).fetchone()
            if exists is None:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(database), sql.Identifier(app_role)
                    )
                )
        conninfo = superuser_conninfo(settings, paths, database)
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
        raise StackError(f"PostgreSQL refused to set up {database}: {exc}") from exc
    return exists is None


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
