"""Deployment configuration: where Temporal is, where evidence goes, and the named connections.

Connection secrets live here, in the worker's configuration, and nowhere else: a runbook
and the workflow history name connections (``telemetry-db``), never their DSNs or tokens.
The file is TOML; ``PAUSEGATE_CONFIG`` points to it.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, TypeAdapter, ValidationError, model_validator

from pausegate.config_env import expand_env_references
from pausegate.errors import ConfigError, UnknownConnectionError
from pausegate.models.base import Model

CONFIG_ENV = "PAUSEGATE_CONFIG"
DEFAULT_CONFIG = Path(".pausegate/config.toml")


class PostgresConnection(Model):
    """A PostgreSQL database holding a dataset (and, optionally, its server log for audit)."""

    kind: Literal["postgres"] = "postgres"
    dsn: SecretStr
    log_dir: Path | None = Field(default=None, description="Directory of the server's jsonlog files.")
    copies_elsewhere: list[str] | None = Field(
        default=None, description="Other PostgreSQL connections (servers) where copies of this database's "
        "data may live: foreign tables reading it, subscriptions to its publications.")
    known_as: list[str] | None = Field(
        default=None, description="Host names and addresses other servers reach this database by, beside "
        "the DSN's host.")


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


MIN_PSEUDONYM_KEY_BYTES = 16


class PseudonymKey(Model):
    """A key for HMAC-SHA256 pseudonyms, by key id: inline (``secret``) or in a file (``file``, raw bytes).

    Plans name the key id only; the key stays in the worker's configuration."""

    secret: SecretStr | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> PseudonymKey:
        if (self.secret is None) == (self.file is None):
            raise ValueError("give exactly one of secret and file")
        if self.secret is not None and len(self.secret.get_secret_value().encode()) < MIN_PSEUDONYM_KEY_BYTES:
            raise ValueError(f"a pseudonym key needs at least {MIN_PSEUDONYM_KEY_BYTES} bytes")
        return self

    def key_bytes(self) -> bytes:
        """The key's bytes (a file is read when the key is used, so only the worker needs to read it)."""
        if self.secret is not None:
            return self.secret.get_secret_value().encode()
        assert self.file is not None
        try:
            key = self.file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"pseudonym key file {self.file}: {exc.strerror}") from exc
        if len(key) < MIN_PSEUDONYM_KEY_BYTES:
            raise ConfigError(f"pseudonym key file {self.file}: at least {MIN_PSEUDONYM_KEY_BYTES} bytes needed")
        return key


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


KEY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class EncryptionSettings(Model):
    """Workflow history encryption (``pausegate.temporal.codec``) and the key that hides names in ids.

    Each key is 32 bytes (AES-256-GCM), given base64-encoded inline (``keys``) or as a file holding the
    base64 text (``key_files``), by key id. New payloads use ``current_key``; a payload names the key it
    was sealed with, so rotating is adding a key and making it current while the old ones stay listed.
    ``identifier_key`` keys the digests that stand for names in workflow and update ids: it never
    rotates (a new one would lose every open pause's id).
    """

    current_key: str = Field(pattern=KEY_ID_PATTERN, description="Key id new payloads are encrypted with.")
    keys: dict[str, SecretStr] = Field(default_factory=dict, description="Key id -> base64 of 32 bytes.")
    key_files: dict[str, Path] = Field(default_factory=dict, description="Key id -> file holding its base64.")
    identifier_key: SecretStr | None = Field(default=None, description="base64 of 32 bytes; keys id digests.")
    identifier_key_file: Path | None = None
    ui_origin: str | None = Field(
        default=None, description="The Temporal Web UI's origin (scheme://host:port) allowed to call the codec "
        "endpoint from a browser (CORS); none: no browser may.")


class S3EvidenceSettings(Model):
    """An S3-compatible bucket (AWS S3, MinIO) with versioning and Object Lock: see docs/evidence-store.md."""

    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = Field(default="", max_length=200, description="Key prefix inside the bucket, e.g. 'pausegate/'.")
    region: str | None = None
    endpoint_url: str | None = Field(default=None, description="For MinIO or another S3-compatible server.")
    access_key_id: SecretStr | None = Field(default=None, description="Unset: the standard AWS credential chain.")
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    retention_days: int = Field(
        default=2555, ge=1, le=36500, description="Compliance-mode retention set on every object written (7 years)."
    )
    addressing_style: Literal["auto", "virtual", "path"] = "auto"
    writer_principal: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^arn:[a-z-]+:(iam|sts)::[0-9]{12}:\S+$",
        description="ARN of the worker's principal: the only one the bucket policy may let write under the "
        "prefix. A worker refuses to open the store until the policy is checked (docs/evidence-store.md).",
    )
    max_attempts: int = Field(
        default=5, ge=1, le=20, description="Attempts per request (the activity retries after that)."
    )


class EvidenceSettings(Model):
    """Where sealed evidence is written: a local directory (the embedded default) or an S3 bucket."""

    store: Literal["local", "s3"] = Field(
        default="local", description="'s3': the [evidence.s3] bucket; 'local': the directory below."
    )
    s3: S3EvidenceSettings | None = None
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

    @model_validator(mode="after")
    def _s3_configured(self) -> EvidenceSettings:
        if self.store == "s3" and self.s3 is None:
            raise ValueError("store = 's3' needs an [evidence.s3] table (bucket, ...)")
        return self


class OidcSettings(Model):
    """OIDC JWTs for production: who issued them, for whom, where the keys are, where the roles are."""

    issuer: str
    audience: str
    jwks_url: str
    groups_claim: str = "groups"
    group_prefix: str | None = Field(
        default="pausegate:", min_length=1, max_length=100,
        description="A group <prefix><role> grants <role> in every program, <prefix><program>:<role> grants it in "
        "that program. None: only group_roles grants roles.",
    )
    group_roles: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Groups granting roles by name: each group's roles, written NAME (every program) or "
        "NAME@PROGRAM (that program). A group neither prefixed nor listed here grants nothing, whatever it is "
        "called.",
    )
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


class StateDatabaseSettings(Model):
    """The PostgreSQL database every API replica shares (``api.state = "postgres"``): users and role
    changes, the refusal log, rate limits and the update slots of each pause (``pausegate.apidb``; chosen
    by ``pausegate.api.backends``)."""

    dsn: SecretStr = Field(description="How each replica connects (the API's own role); never logged or shown.")
    owner_dsn: SecretStr | None = Field(
        default=None,
        description="A role that owns the schema: migrations run as it at start-up and grant the API's role only "
        "what it needs (no UPDATE or DELETE on the logs). Default: migrate as the API's role.",
    )
    pool_size: int = Field(default=8, ge=1, le=100, description="Connections per replica for the request path.")
    slot_lease_seconds: float = Field(
        default=10.0, gt=0.5, le=600,
        description="A replica renews the update slots it holds; a dead replica's slots are free after this.",
    )


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
"""The names the embedded default's console is reached by."""


class ApiSettings(Model):
    """The HTTP API people use; it is the only way to act on a pause without Temporal access."""

    host: str = "127.0.0.1"
    port: int = 8700
    runbooks_dir: Path = Path("runbooks")
    users_file: Path = Field(default=Path(".pausegate/users.json"), description="Local token hashes (embedded).")
    passkey_rp_id: str = Field(default="localhost", max_length=253, description="The WebAuthn relying party id "
                               "passkeys are registered and used for: the console's host name (never an IP address).")
    passkey_origins: list[str] = Field(default_factory=list, max_length=10, description="The origins passkeys may "
                                       "be used at (scheme://host[:port]); none: http://localhost:<port>.")

    key_notices: str | None = Field(default=None, max_length=200, description="The webhook connection that tells "
                                    "a key's holder of every enrollment, confirmation and removal of their keys; "
                                    "none: the only webhook connection, if exactly one is configured.")

    def passkey_origins_or_default(self) -> list[str]:
        """Where passkeys may be used: as configured, else the console on this host's port."""
        return list(self.passkey_origins) or [f"http://localhost:{self.port}"]
    refusal_log: Path = Field(
        default=Path(".pausegate/api-refusals.jsonl"),
        description="Hash-chained record of refusals that no open pause can hold in its timeline.",
    )
    oidc: OidcSettings | None = None
    allowed_hosts: list[str] | None = Field(
        default=None, max_length=100,
        description="The names people reach the console by (HOST, any port, or HOST:PORT): its origin, against "
        "which a change's Origin is checked, and the OIDC callback are built from a request's Host only when it "
        "is one of these. None: localhost, 127.0.0.1, [::1] and api.host.",
    )
    max_updates_in_flight_per_pause: int = Field(default=8, ge=1, le=10)
    state: Literal["files", "postgres"] = Field(
        default="files",
        description="Where users, refusals, rate limits and update slots live: files (one API process) or "
        "postgres (state_db; any number of replicas).",
    )
    state_db: StateDatabaseSettings | None = None

    def served_hosts(self) -> frozenset[str]:
        """The allowed names, lower-case (see ``allowed_hosts``)."""
        if self.allowed_hosts is not None:
            return frozenset(h.lower() for h in self.allowed_hosts)
        # a wildcard bind names no host anyone asks for
        extra = {self.host.lower()} - {"0.0.0.0", "::", ""}
        return frozenset({*LOOPBACK_HOSTS, *(f"[{h}]" if ":" in h else h for h in extra)})

    @model_validator(mode="after")
    def _state_db_when_postgres(self) -> ApiSettings:
        if self.state == "postgres" and self.state_db is None:
            raise ValueError('api.state = "postgres" needs [api.state_db] with a dsn')
        return self


class ObservabilitySettings(Model):
    """Traces and metrics (``pausegate.observability``). Every exporter is optional: with none, spans are
    still made (log lines carry their trace id) and nothing is sent anywhere."""

    service_name: str = Field(default="pausegate", description="OTel service.name; the process role is appended.")
    otlp_endpoint: str | None = Field(
        default=None, pattern=r"^https?://\S+$",
        description="OTLP/HTTP traces endpoint, e.g. http://otel-collector:4318/v1/traces.",
    )
    otlp_headers: dict[str, SecretStr] = Field(default_factory=dict, description="e.g. an authorization header.")
    worker_metrics_bind: str | None = Field(
        default=None, pattern=r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}$",
        description="host:port of the worker's Prometheus /metrics (SDK and pausegate metrics).",
    )
    api_metrics: bool = Field(default=True, description="Serve /metrics on the API (token-free, like /healthz).")


class VersioningSettings(Model):
    """Worker deployment versioning: each release of the worker code is one deployment version; a pause
    stays on the version it started on and moves to the current one when it continues as new."""

    enabled: bool = False
    deployment_name: str = Field(default="pausegate", min_length=1, max_length=200)
    build_id: str | None = Field(
        default=None, min_length=1, max_length=200, description="Default: the pausegate package version."
    )
    promote: Literal["never", "if-none", "always"] = Field(
        default="never",
        description="Whether a starting worker makes its version current: never (a release pipeline does, "
        "with `temporal worker deployment set-current-version`), if-none (no version is current yet), always.",
    )


class Settings(Model):
    """The whole deployment configuration."""

    temporal: TemporalSettings = Field(default_factory=TemporalSettings)
    evidence: EvidenceSettings = Field(default_factory=EvidenceSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    connections: dict[str, Connection] = Field(default_factory=dict)
    encryption: EncryptionSettings | None = Field(
        default=None, description="History encryption; none: history payloads are plaintext JSON.")
    pseudonym_keys: dict[str, PseudonymKey] = Field(
        default_factory=dict, description="Keys for pseudonymising data actions, by the key id a plan names."
    )
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    versioning: VersioningSettings = Field(default_factory=VersioningSettings)

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
    ``ConfigError`` that says which file and which field. A value written ``"${NAME}"`` is taken
    from the environment variable NAME (``pausegate.config_env``).
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
    raw = expand_env_references(raw, where=str(target))  # "${NAME}" values: secrets from the environment
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
            if isinstance(v, dict):  # an inline table (observability's OTLP headers); none when empty
                if v:
                    lines.append(f"{key} = {{ " + ", ".join(f"{value(k)} = {value(x)}" for k, x in v.items()) + " }")
            elif isinstance(v, list):
                lines.append(f"{key} = [" + ", ".join(value(x) for x in v) + "]")
            elif v is not None:
                lines.append(f"{key} = {value(v)}")
        lines.append("")

    table("temporal", settings.temporal)
    table("evidence", settings.evidence.model_copy(update={"s3": None}))
    if settings.evidence.s3 is not None:
        table("evidence.s3", settings.evidence.s3)
    api = settings.api
    table("api", api.model_copy(update={"oidc": None, "state_db": None}))
    if api.state_db is not None:
        table("api.state_db", api.state_db)
    if api.oidc is not None:
        lines.append("[api.oidc]")
        for key in type(api.oidc).model_fields:
            v = getattr(api.oidc, key)
            if v is None:
                continue  # TOML has no null: an unset optional field (the console client's) is left out
            if isinstance(v, dict):  # group_roles: an inline table of lists, none when empty
                if v:
                    pairs = (f"{value(k)} = [" + ", ".join(value(x) for x in roles) + "]" for k, roles in v.items())
                    lines.append(f"{key} = {{ " + ", ".join(pairs) + " }")
                continue
            rendered = "[" + ", ".join(value(x) for x in v) + "]" if isinstance(v, list) else value(v)
            lines.append(f"{key} = {rendered}")
        lines.append("")
    for name, conn in settings.connections.items():
        table(f'connections."{name}"', conn)
    if settings.encryption is not None:
        enc = settings.encryption
        table("encryption", enc.model_copy(update={"keys": None, "key_files": None}))
        for sub in ("keys", "key_files"):
            entries = getattr(enc, sub)
            if entries:
                lines.append(f"[encryption.{sub}]")
                lines.extend(f'"{k}" = {value(v)}' for k, v in entries.items())  # ids match KEY_ID_PATTERN
                lines.append("")
    table("observability", settings.observability)
    table("versioning", settings.versioning)
    return "\n".join(lines)
