"""Debian's PostgreSQL 15 as extra clusters for tests that need what the embedded server lacks:
``postgres_fdw`` (contrib), logical replication between two clusters (``wal_level = logical``).

``.ci/run`` and ``make test`` install ``postgresql-15`` when it is missing. Each cluster is an
``initdb`` into a temporary directory, started on a free port with trust authentication on
localhost, every statement logged as jsonlog (as the project reads PostgreSQL's log), and stopped
and deleted at teardown. The server refuses to run as root: it then runs as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER = "postgres"
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "wal_level": "logical",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "max_logical_replication_workers": "8",
    "wal_retrieve_retry_interval": "'200ms'",
    "logging_collector": "on",
    "log_destination": "'jsonlog'",
    "log_statement": "'all'",
    "log_timezone": "'UTC'",
    "log_filename": "'postgresql-%Y-%m-%d_%H%M%S.log'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "'32MB'",
}


def available() -> bool:
    return (BIN / "postgres").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A running PostgreSQL 15 cluster."""

    root: Path
    port: int
    log_dir: Path
    files_dir: Path  # a directory the server may write COPY TO files into

    def dsn(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres", user: str = SUPERUSER) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.dsn(database, user), autocommit=True)

    def create_database(self, name: str) -> str:
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _as_server_user() -> dict[str, object]:
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam("postgres")
    return {"user": user.pw_uid, "group": user.pw_gid}


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(path, user.pw_uid, user.pw_gid)


@contextlib.contextmanager
def running_cluster(name: str = "pg15") -> Iterator[Cluster]:
    """A fresh cluster for the duration of the block."""
    if not available():
        raise RuntimeError(f"PostgreSQL 15 is not installed at {BIN} (apt-get install postgresql-15)")
    # not under pytest's tmp dir: the server runs as its own user and must reach its files
    root = Path(tempfile.mkdtemp(prefix=f"pausegate-{name}-"))
    root.chmod(0o755)
    _chown(root)
    data, logs, files = root / "data", root / "log", root / "files"
    for d in (data, logs, files):
        d.mkdir()
        _chown(d)
    logs.chmod(0o700)
    run = _as_server_user()
    started = False
    try:
        subprocess.run([str(BIN / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                        "--no-sync", "--locale=C.UTF-8"], check=True, capture_output=True, **run)  # type: ignore[call-overload]
        port = _free_port()
        settings = {**_SETTINGS, "port": str(port), "log_directory": f"'{logs}'",
                    "unix_socket_directories": f"'{root}'"}
        with (data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
        subprocess.run([str(BIN / "pg_ctl"), "-D", str(data), "-w", "-l", str(root / "server.log"), "start"],
                       check=True, capture_output=True, **run)  # type: ignore[call-overload]
        started = True
        yield Cluster(root=root, port=port, log_dir=logs, files_dir=files)
    finally:
        if started:
            subprocess.run([str(BIN / "pg_ctl"), "-D", str(data), "-w", "-m", "immediate", "stop"],
                           check=False, capture_output=True, **run)  # type: ignore[call-overload]
        shutil.rmtree(root, ignore_errors=True)
