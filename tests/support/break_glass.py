"""Break-glass test seams: servers that take a grant's password or trust it, and logins as its role."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psycopg

from tests.support.debian_pg import Cluster

# The superuser keeps trust on the socket; every other role there must give its password (SCRAM); TCP
# on localhost trusts everyone: a grant's end is tested against both ways in.
HBA = """local all postgres trust
local all all scram-sha-256
host all all 127.0.0.1/32 trust
"""
PASSWORD = "correct horse battery staple"
SALT = bytes(range(16))


def take_passwords(cluster: Cluster) -> None:
    """Rewrite the cluster's pg_hba.conf (HBA) and reload it."""
    (cluster.root / "data" / "pg_hba.conf").write_text(HBA)
    with cluster.connect() as conn:
        conn.execute("SELECT pg_reload_conf()")
        # the reload is asynchronous: the server says when the file it reads is this one
        for _ in range(200):
            rules = conn.execute("SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'scram-sha-256'"
                                 ).fetchone()
            if rules is not None and rules[0] == 1:
                return
    raise AssertionError("pg_hba.conf was not reloaded")


def login_with_password(cluster: Cluster, database: str, role: str, password: str = PASSWORD
                        ) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(host=str(cluster.root), port=cluster.port, dbname=database, user=role,
                           password=password, autocommit=True, connect_timeout=10)


def login_trusted(cluster: Cluster, database: str, role: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(cluster.dsn(database, role), autocommit=True, connect_timeout=10)


def readable_logs(cluster: Cluster) -> Path:
    """The cluster's log directory (the tests run as root, or as the server's user)."""
    assert os.access(cluster.log_dir, os.R_OK)
    return cluster.log_dir


def password_for(hba: Path, admin_dsn: str, role_dsn: str, role: str, *, required: bool) -> None:
    """On a socket-only server that trusts every local role: make ``role`` give its password (SCRAM),
    or trust it again; returns once the server asks for a password (or no longer does)."""
    line = f"local all {role} scram-sha-256\n"
    text = hba.read_text().replace(line, "")
    hba.write_text(line + text if required else text)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")
    for _ in range(500):
        try:
            psycopg.connect(role_dsn, connect_timeout=5).close()
            asked = False
        except psycopg.OperationalError as exc:
            asked = "password" in str(exc)
        if asked == required:
            return
        time.sleep(0.01)  # the reload is a signal: the postmaster rereads the file when it gets to it
    raise AssertionError(f"{hba} was not taken up")
