"""The embedded stack's data directory is owner-only, and its secret-bearing files are 0600 from creation."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pausegate.auth import UserDirectory, users_log_path
from pausegate.config import PostgresConnection, Settings, load_settings
from pausegate.embedded import stack
from pausegate.evidence.signing_keys import load_or_create_signing_key


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The most permissive umask: whatever the code creates, it creates with the mode it asks for."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_the_data_directory_is_created_owner_only_and_an_open_one_is_closed(tmp_path: Path, open_umask: None) -> None:
    data = tmp_path / "nested" / ".pausegate"
    stack.prepare_data_dir(data)
    assert mode(data) == 0o700
    opened = tmp_path / "older"
    opened.mkdir(mode=0o755)
    stack.prepare_data_dir(opened)  # made by an older version, open to others: closed now
    assert mode(opened) == 0o700


def test_config_toml_is_0600_before_it_appears_and_never_written_in_place(
    tmp_path: Path, open_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    settings = Settings(connections={"db": PostgresConnection(dsn="postgresql://u:secret@h/db")})  # type: ignore[arg-type]
    seen: list[tuple[str, int, bytes]] = []
    real_replace = os.replace

    def watching_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        # The moment before the file takes config.toml's name: its mode and content are already final.
        if Path(dst) == config:
            seen.append((Path(src).name, mode(Path(src)), Path(src).read_bytes()))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", watching_replace)
    for _ in range(2):  # first start, and a restart rewriting it
        stack.write_config(config, settings)
    assert [(m, b"secret" in content) for _, m, content in seen] == [(0o600, True), (0o600, True)]
    assert all(name != "config.toml" for name, _, _ in seen)  # always a new file, renamed into place
    assert mode(config) == 0o600
    assert load_settings(config).postgres("db").dsn.get_secret_value() == "postgresql://u:secret@h/db"


def test_the_users_file_and_its_log_are_owner_only(tmp_path: Path, open_umask: None) -> None:
    data = tmp_path / "data"
    stack.prepare_data_dir(data)
    users = UserDirectory(data / "users.json", load_or_create_signing_key(data / "keys" / "evidence.pem"))
    assert users.ensure_first_admin() is not None
    log = users_log_path(data / "users.json")
    assert [mode(p) for p in (data / "users.json", log, log.with_name("users-log.head.json"))] == [0o600] * 3
    assert mode(data) == 0o700


def test_postgres_lives_beside_the_data_directory_when_it_cannot_enter_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / ".pausegate"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert stack.postgres_dirs(data) == (data / "pg", data / "pglog")  # runs as us: inside is fine
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    beside = tmp_path / ".pausegate-postgres"
    assert stack.postgres_dirs(data) == (beside / "pg", beside / "pglog")
    (data / "pg").mkdir(parents=True)
    (data / "pg" / "PG_VERSION").write_text("16")
    assert stack.postgres_dirs(data) == (data / "pg", data / "pglog")  # an existing cluster is not abandoned
