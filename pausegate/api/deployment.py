"""A runbook checked against the deployment it runs in: every connection it names exists and is of the
kind its use needs.

A runbook validates on its own (``pausegate runbook validate``) but names connections that only the
deployment's configuration defines; a mistaken name would otherwise surface as a blocked containment
step long after the switch was pulled. The API checks when it loads a runbook and tells the
commander at trigger; the pause starts all the same (pulling the switch always starts containment).
The worker's configuration is what containment uses; the API's is taken to be the same deployment.
"""

from __future__ import annotations

from typing import Literal

from pausegate.config import PostgresConnection, Settings
from pausegate.models.runbook import Runbook

Kind = Literal["postgres", "fleet", "webhook"]


def deployment_problems(runbook: Runbook, settings: Settings) -> list[str]:
    """Every connection of ``runbook`` that ``settings`` lacks or holds as another kind, one sentence each."""
    problems: list[str] = []
    configured = ", ".join(sorted(settings.connections)) or "none"

    def need(what: str, name: str, kind: Kind) -> PostgresConnection | None:
        connection = settings.connections.get(name)
        if connection is None:
            problems.append(
                f"{what} names connection {name!r}, which this deployment does not have (configured: {configured})"
            )
            return None
        if connection.kind != kind:
            problems.append(f"{what} names connection {name!r}, a {connection.kind} connection; it needs {kind}")
            return None
        return connection if isinstance(connection, PostgresConnection) else None

    need("the fleet", runbook.fleet.connection, "fleet")
    for dataset in runbook.datasets:
        need(f"dataset {dataset.name!r}", dataset.connection, "postgres")
    for source in runbook.audit_sources:
        if source.connection is None:  # jsonl: a path on the worker, not a connection
            continue
        what = f"audit source {source.name!r}"
        if source.kind == "postgres_log":
            database = need(what, source.connection, "postgres")
            if database is not None and database.log_dir is None:
                problems.append(
                    f"{what} reads the server log of connection {source.connection!r}, which has no log_dir"
                )
        else:
            need(what, source.connection, "fleet")
    for notification in runbook.notifications:
        need(f"notification {notification.name!r}", notification.connection, "webhook")
    return problems
