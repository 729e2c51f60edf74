"""Deployment configuration: where Temporal is, where evidence goes, and the named connections.

Connection secrets live here, in the worker's configuration, and nowhere else: a runbook
and the workflow history name connections (``telemetry-db``), never their DSNs or tokens.
The file is TOML; ``PAUSEGATE_CONFIG`` points to it.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, SecretStr, TypeAdapter, ValidationError

from pausegate.errors import ConfigError, UnknownConnectionError
from pausegate.models.base import Model

if TYPE_CHECKING:
    from pausegate.evidence.store import LocalEvidenceStore

CONFIG_ENV = "PAUSEGATE_CONFIG"
DEFAULT_CONFIG = Path(".pausegate/config.toml")


class PostgresConnection(Model):
    """A PostgreSQL database holding a dataset (and, optionally, its server log for audit)."""

    kind: Literal["postgres"] = "postgres"
    dsn: SecretStr
    log_dir: Path | None = Field(default=None, description="Directory of the server's jsonlog files.")


class FleetConnection(Model):
    """An agent fleet speaking the fleet contract over HTTP."""

    kind: Literal["fleet"] = "fleet"
    url: SecretStr = Field(description="May carry credentials (user:password@); never shown, logged or recorded.")
    token: SecretStr | None = None
    timeout_seconds: float = 30.0


class WebhookConnection(Model):
    """A Slack-compatible incoming webhook (its URL is a secret)."""

    kind: Literal["webhook"] = "webhook"
    url: SecretStr
    timeout_seconds: float = 10.0


Connection = Annotated[PostgresConnection | FleetConnection | WebhookConnection, Field(discriminator="kind")]


class TemporalSettings(Model):
    """How to reach Temporal: the dev server by default, a cluster or Temporal Cloud in production."""

    address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "pausegate"
    urgent_task_queue: str | None = Field(
        default=None,
        description="Task queue of the steps that stop harm, served by a worker of its own "
        "(`pausegate worker --urgent`); default: task_queue + '-urgent'.",
    )

    @property
    def urgent_queue(self) -> str:
        return self.urgent_task_queue or self.task_queue + "-urgent"
    tls: bool = False
    tls_client_cert: Path | None = None
    tls_client_key: Path | None = None
    tls_server_ca: Path | None = None
    api_key: SecretStr | None = None


class EvidenceSettings(Model):
    """Where sealed evidence is written (a local directory for the embedded default)."""

    directory: Path = Path(".pausegate/evidence")
    signing_key: Path | None = Field(default=None, description="Ed25519 private key (PEM); created on first use.")
    compression: Literal["zstd", "none"] = Field(
        default="zstd", description="How sealed chunks are stored: zstd-compressed JSON lines, or plain."
    )
    compression_level: int = Field(
        default=-3, ge=-7, le=19, description="zstd level for sealed chunks (negative: faster, larger)."
    )
    signing_key_fingerprint: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the signing key's raw public key. Verifiers trust a public key found beside "
        "the evidence only if it has this fingerprint, and the worker refuses a signing key that does not; "
        "the embedded stack pins it on first start.",
    )

    def open_store(self) -> LocalEvidenceStore:
        from pausegate.evidence.store import LocalEvidenceStore

        return LocalEvidenceStore(
            self.directory,
            self.signing_key,
            compression=self.compression,
            compression_level=self.compression_level,
            expected_fingerprint=self.signing_key_fingerprint,
        )


class OidcSettings(Model):
    """OIDC JWTs for production: who issued them, for whom, where the keys are, where the roles are."""

    issuer: str
    audience: str
    jwks_url: str
    groups_claim: str = "groups"
    actor_claim: str = "sub"
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    leeway_seconds: int = 30
    # Console sign-in (authorization code + PKCE, pausegate.console.oidc); offered when client_id is set.
    # The ID token the console receives is verified like an API token, so its ``aud`` must hold ``audience``.
    client_id: str | None = None
    client_secret: SecretStr | None = Field(default=None, description="Only for a confidential client.")
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    redirect_uri: str | None = Field(
        default=None, description="Default: this console's /console/sign-in/oidc/callback as the request names it."
    )


class ApiSettings(Model):
    """The HTTP API people use; it is the only way to act on a pause without Temporal access."""

    host: str = "127.0.0.1"
    port: int = 8700
    runbooks_dir: Path = Path("runbooks")
    users_file: Path = Field(default=Path(".pausegate/users.json"), description="Local token hashes (embedded).")
    refusal_log: Path = Field(
        default=Path(".pausegate/api-refusals.jsonl"),
        description="Hash-chained record of refusals that no open pause can hold in its timeline.",
    )
    oidc: OidcSettings | None = None
    max_updates_in_flight_per_pause: int = Field(default=8, ge=1, le=10)


class Settings(Model):
    """The whole deployment configuration."""

    temporal: TemporalSettings = Field(default_factory=TemporalSettings)
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    connections: dict[str, Connection] = Field(default_factory=dict)

    def connection(self, name: str) -> PostgresConnection | FleetConnection | WebhookConnection:
        """The named connection, or an error naming what is missing."""
        try:
            return self.connections[name]
        except KeyError:
            known = ", ".join(sorted(self.connections)) or "none"
            raise UnknownConnectionError(
                f"connection {name!r} is not configured (configured: {known})"
            ) from None

    def postgres(self, name: str) -> PostgresConnection:
        conn = self.connection(name)
        if not isinstance(conn, PostgresConnection):
            raise ConfigError(f"connection {name!r} is a {conn.kind} connection, not postgres")
        return conn

    def fleet(self, name: str) -> FleetConnection:
        conn = self.connection(name)
        if not isinstance(conn, FleetConnection):
            raise ConfigError(f"connection {name!r} is a {conn.kind} connection, not fleet")
        return conn

    def webhook(self, name: str) -> WebhookConnection:
        conn = self.connection(name)
        if not isinstance(conn, WebhookConnection):
            raise ConfigError(f"connection {name!r} is a {conn.kind} connection, not webhook")
        return conn


_settings_adapter = TypeAdapter(Settings)


def load_settings(path: Path | None = None) -> Settings:
    """Read the configuration from ``path``, ``$PAUSEGATE_CONFIG`` or ``.pausegate/config.toml``.

    A missing default file yields the defaults; a missing named file or a bad one is a
    ``ConfigError`` that says which file and which field.
    """
    explicit = path or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    target = explicit or DEFAULT_CONFIG
    if not target.exists():
        if explicit:
            raise ConfigError(f"{target}: configuration file not found")
        return Settings()
    try:
        raw = tomllib.loads(target.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{target}: not valid TOML: {exc}") from exc
    try:
        settings = _settings_adapter.validate_python(raw)
    except ValidationError as exc:
        problems = [f"{target}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("\n".join(problems)) from exc
    return settings


def dump_settings(settings: Settings) -> str:
    """TOML text of ``settings`` with secrets written out (for the launcher's own config file)."""
    lines: list[str] = []

    def value(v: object) -> str:
        if isinstance(v, SecretStr):
            v = v.get_secret_value()
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return str(v)
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    def table(name: str, model: Model) -> None:
        lines.append(f"[{name}]")
        for key in type(model).model_fields:
            v = getattr(model, key)
            if v is not None:
                lines.append(f"{key} = {value(v)}")
        lines.append("")

    table("temporal", settings.temporal)
    table("evidence", settings.evidence)
    api = settings.api
    table("api", api.model_copy(update={"oidc": None}))
    if api.oidc is not None:
        lines.append("[api.oidc]")
        for key in type(api.oidc).model_fields:
            v = getattr(api.oidc, key)
            if v is None:
                continue  # TOML has no null: an unset optional field (the console client's) is left out
            rendered = "[" + ", ".join(value(x) for x in v) + "]" if isinstance(v, list) else value(v)
            lines.append(f"{key} = {rendered}")
        lines.append("")
    for name, conn in settings.connections.items():
        table(f'connections."{name}"', conn)
    return "\n".join(lines)
