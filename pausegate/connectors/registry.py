"""Connectors built from the deployment configuration, by connection name, once each."""

from __future__ import annotations

from typing import TYPE_CHECKING

from psycopg.conninfo import conninfo_to_dict

from pausegate.config import Settings
from pausegate.connectors.interfaces import AuditSource, DatasetAccess, FleetConnector, Notifier
from pausegate.errors import ConfigError
from pausegate.evidence.interface import EvidenceStore
from pausegate.evidence.open_store import open_evidence_store
from pausegate.models.runbook import AuditSourceSpec

if TYPE_CHECKING:
    from pausegate.connectors.postgres.data_actions import PostgresDataActions


class Connectors:
    """The worker's connectors; activities ask it for one by the name a runbook uses."""

    def __init__(self, settings: Settings, *, evidence_store: EvidenceStore | None = None) -> None:
        self.settings = settings
        self._fleets: dict[str, FleetConnector] = {}
        self._access: dict[str, DatasetAccess] = {}
        self._notifiers: dict[str, Notifier] = {}
        if evidence_store is None:
            evidence_store = open_evidence_store(settings.evidence)
        self.evidence_store: EvidenceStore = evidence_store

    def fleet(self, name: str) -> FleetConnector:
        if name not in self._fleets:
            from pausegate.connectors.fleet import fleet_from_connection

            self._fleets[name] = fleet_from_connection(self.settings.fleet(name))
        return self._fleets[name]

    def access(self, name: str) -> DatasetAccess:
        if name not in self._access:
            from pausegate.connectors.postgres.access import PostgresAccess

            self._access[name] = PostgresAccess(self.settings.postgres(name).dsn.get_secret_value())
        return self._access[name]

    def data_actions(self, name: str) -> PostgresDataActions:
        """Data actions (purge, null, drop, pseudonymise) on the named postgres connection's database."""
        from pausegate.connectors.postgres.data_actions import PostgresDataActions

        dsn = self.settings.postgres(name).dsn.get_secret_value()
        return PostgresDataActions(dsn, keys=self.settings.pseudonym_keys)

    def notifier(self, name: str) -> Notifier:
        if name not in self._notifiers:
            from pausegate.connectors.webhook import notifier_from_connection

            self._notifiers[name] = notifier_from_connection(self.settings.webhook(name))
        return self._notifiers[name]

    def audit_source(self, spec: AuditSourceSpec, program: str, tables: list[str]) -> AuditSource:
        from pausegate.connectors.audit import sources as audit_sources

        if spec.kind == "jsonl":
            assert spec.path is not None
            return audit_sources.JsonlSource(spec.path)
        assert spec.connection is not None
        if spec.kind == "fleet":
            return audit_sources.FleetAuditSource(self.fleet(spec.connection), program)
        if spec.kind == "postgres_log":
            conn = self.settings.postgres(spec.connection)
            if conn.log_dir is None:
                raise ConfigError(f"connection {spec.connection!r} has no log_dir for audit source {spec.name!r}")
            database = conninfo_to_dict(conn.dsn.get_secret_value()).get("dbname")
            return audit_sources.PostgresLogSource(conn.log_dir, tables, database=str(database) if database else None)
        raise ConfigError(f"unknown audit source kind {spec.kind!r}")

    async def aclose(self) -> None:
        """Close the connectors' HTTP clients and pools."""
        for connector in [*self._fleets.values(), *self._notifiers.values(), *self._access.values()]:
            close = getattr(connector, "aclose", None)
            if close is not None:
                await close()
