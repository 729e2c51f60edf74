"""One tamper suite for every medium of the chained log (``pausegate.records``): the same cases, the same
findings, whether the log is a file or rows of the API's database."""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg.types.json import Jsonb

from pausegate.apidb.database import ApiDatabase
from pausegate.config import EvidenceSettings, StateDatabaseSettings
from pausegate.evidence.open_store import open_evidence_store
from pausegate.models.base import Model
from pausegate.records.anchors import HeadAnchors
from pausegate.records.chain import GENESIS
from pausegate.records.files import FileMedium
from pausegate.records.log import ChainLog, ChainMedium
from pausegate.records.postgres import PgMedium
from tests.apidb.support import new_state_database, tamper

KEY = Ed25519PrivateKey.generate()


class Note(Model):
    """An entry of the test's own: the chain does not care what its lines say."""

    actor: str
    prev: str


class Tampering(Protocol):
    """A log in one medium, and what someone with access to that medium can do to it behind the API."""

    medium: ChainMedium

    def remove(self, number: int) -> None: ...

    def edit(self, number: int, old: str, new: str) -> None: ...

    def swap(self, a: int, b: int) -> None: ...

    def cut_end(self) -> None: ...

    def lose_head(self) -> None: ...

    def forge_head(self, lines: int) -> None: ...

    def saved_head(self) -> object:
        """The head as stored now, to be put back later (``put_head_back``)."""
        ...

    def put_head_back(self, saved: object) -> None: ...

    def other(self) -> ChainMedium:
        """Another way to the same log (another process, another replica)."""
        ...


class FileTampering:
    def __init__(self, path: Path) -> None:
        self.medium = FileMedium(path)

    def _lines(self) -> list[bytes]:
        return self.medium.path.read_bytes().splitlines(keepends=True)

    def _write(self, lines: list[bytes]) -> None:
        self.medium.path.write_bytes(b"".join(lines))

    def remove(self, number: int) -> None:
        lines = self._lines()
        self._write([*lines[: number - 1], *lines[number:]])

    def edit(self, number: int, old: str, new: str) -> None:
        lines = self._lines()
        lines[number - 1] = lines[number - 1].replace(old.encode(), new.encode())
        self._write(lines)

    def swap(self, a: int, b: int) -> None:
        lines = self._lines()
        lines[a - 1], lines[b - 1] = lines[b - 1], lines[a - 1]
        self._write(lines)

    def cut_end(self) -> None:
        self._write(self._lines()[:-1])

    def lose_head(self) -> None:
        self.medium.head_path.unlink()

    def forge_head(self, lines: int) -> None:
        head = json.loads(self.medium.head_path.read_bytes())
        head["lines"] = lines
        self.medium.head_path.write_bytes(json.dumps(head).encode())

    def saved_head(self) -> object:
        return self.medium.head_path.read_bytes()

    def put_head_back(self, saved: object) -> None:
        assert isinstance(saved, bytes)
        self.medium.head_path.write_bytes(saved)

    def other(self) -> ChainMedium:
        return FileMedium(self.medium.path)


class RowTampering:
    def __init__(self, dbs: tuple[ApiDatabase, ApiDatabase], superuser_dsn: str, name: str) -> None:
        self.dbs = dbs
        self.superuser_dsn = superuser_dsn
        self.name = name
        self.medium = PgMedium(dbs[0].sync_pool.connection, name)

    def _sql(self, statement: str, *params: object) -> None:
        tamper(self.superuser_dsn, statement, (self.name, *params))

    def remove(self, number: int) -> None:
        self._sql("DELETE FROM api_log_lines WHERE log = %s AND seq = %s", number)

    def edit(self, number: int, old: str, new: str) -> None:
        tamper(self.superuser_dsn, "UPDATE api_log_lines SET line = replace(line, %s, %s) WHERE log = %s AND seq = %s",
               (old, new, self.name, number))

    def swap(self, a: int, b: int) -> None:
        self._sql("UPDATE api_log_lines AS l SET line = o.line FROM api_log_lines AS o WHERE l.log = %s "
                  "AND o.log = l.log AND ((l.seq = %s AND o.seq = %s) OR (l.seq = %s AND o.seq = %s))", a, b, b, a)

    def cut_end(self) -> None:
        self._sql("DELETE FROM api_log_lines WHERE log = %s AND seq = "
                  "(SELECT max(seq) FROM api_log_lines WHERE log = %s)", self.name)

    def lose_head(self) -> None:
        self._sql("DELETE FROM api_log_heads WHERE log = %s")

    def forge_head(self, lines: int) -> None:
        tamper(self.superuser_dsn, "UPDATE api_log_heads SET lines = %s WHERE log = %s", (lines, self.name))

    def saved_head(self) -> object:
        with psycopg.connect(self.superuser_dsn) as conn:
            return conn.execute("SELECT lines, last, breaks, key_sha256, signature FROM api_log_heads WHERE log = %s",
                                (self.name,)).fetchone()

    def put_head_back(self, saved: object) -> None:
        assert isinstance(saved, tuple)
        lines, last, breaks, key_sha256, signature = saved
        tamper(self.superuser_dsn, "UPDATE api_log_heads SET lines = %s, last = %s, breaks = %s, key_sha256 = %s, "
               "signature = %s WHERE log = %s", (lines, last, Jsonb(breaks), key_sha256, signature, self.name))

    def other(self) -> ChainMedium:
        return PgMedium(self.dbs[1].sync_pool.connection, self.name)


@pytest.fixture(scope="module")
def database(
    postgres: tuple[str, Path],
) -> Iterator[tuple[StateDatabaseSettings, str, tuple[ApiDatabase, ApiDatabase]]]:
    """One API database for the module, reached as two replicas; each test has a log of its own in it."""
    settings, superuser = new_state_database(postgres[0])
    replicas = (ApiDatabase(settings), ApiDatabase(settings))
    yield settings, superuser, replicas
    for db in replicas:
        db.close_sync()


@pytest.fixture(params=["file", "postgres"])
def medium(request: pytest.FixtureRequest, tmp_path: Path) -> Tampering:
    if request.param == "file":
        return FileTampering(tmp_path / "log.jsonl")
    _, superuser, replicas = request.getfixturevalue("database")
    return RowTampering(replicas, superuser, f"tamper-{request.node.name}")


def notes(medium: ChainMedium, key: Ed25519PrivateKey = KEY, anchors: HeadAnchors | None = None) -> ChainLog[Note]:
    return ChainLog(medium, key, Note.model_validate, "a note", anchor=anchors.log("notes") if anchors else None)


def filled(t: Tampering, n: int) -> ChainLog[Note]:
    log = notes(t.medium)
    for i in range(n):
        log.append(lambda prev, i=i: Note(actor=f"user{i}", prev=prev))  # type: ignore[misc]
    assert log.problems() == []
    return log


def append(log: ChainLog[Note], actor: str) -> None:
    log.append(lambda prev: Note(actor=actor, prev=prev))


def test_entries_chain_from_genesis(medium: Tampering) -> None:
    entries = list(filled(medium, 5).entries())
    assert [e.actor for e in entries] == [f"user{i}" for i in range(5)]
    assert entries[0].prev == GENESIS and len({e.prev for e in entries}) == 5
    if isinstance(medium.medium, FileMedium):
        assert stat.S_IMODE(medium.medium.path.stat().st_mode) == 0o600


# Each change made behind the API, what the check finds (how a problem starts), and whether the next append
# records a break in the signed head (a change at the end, which re-signing the head would otherwise hide)
# or the change stays found as it was (a change in the middle stays a broken link).
CASES: dict[str, tuple[Callable[[Tampering], None], Callable[[ChainMedium], str], bool]] = {
    "a line removed": (lambda t: t.remove(3), lambda m: f"{m.where}:3: does not follow line 2", False),
    "a line edited": (lambda t: t.edit(2, "user1", "user9"), lambda m: f"{m.where}:3: does not follow line 2", False),
    "lines reordered": (lambda t: t.swap(2, 3), lambda m: f"{m.where}:2: does not follow line 1", False),
    "the end cut": (
        lambda t: t.cut_end(),
        lambda m: f"{m.where}: ends at line 4, the signed head says line 5 "
        "(lines cut or appended outside the API, or the last line edited)",
        True,
    ),
    "the last line edited": (
        lambda t: t.edit(5, "user4", "user7"),
        lambda m: f"{m.where}: ends at line 5, the signed head says line 5 "
        "(lines cut or appended outside the API, or the last line edited)",
        True,
    ),
    "the head forged": (
        lambda t: t.forge_head(1),
        lambda m: f"{m.head_where}: signature does not verify with the deployment's key",
        True,
    ),
    "the head lost": (
        lambda t: t.lose_head(),
        lambda m: f"{m.head_where}: missing or unreadable; the log's end is not vouched for",
        True,
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_change_behind_the_api_is_found_and_never_forgotten(medium: Tampering, case: str) -> None:
    change, finding, at_the_end = CASES[case]
    log = filled(medium, 5)
    change(medium)
    problems = log.problems()
    assert any(p.startswith(finding(medium.medium)) for p in problems), problems
    # The next append (from anywhere) keeps going, and what was found stays found.
    append(notes(medium.other()), "x")
    after = log.problems()
    assert after, "a change made outside the API is never forgotten"
    breaks = [p for p in after if "did not end where its signed head said (changed outside the API)" in p]
    assert bool(breaks) == at_the_end, after
    if not at_the_end:
        assert any(p.startswith(finding(medium.medium)) for p in after), after


def test_an_outside_change_is_recorded_as_a_break_in_the_signed_head(medium: Tampering) -> None:
    log = filled(medium, 3)
    medium.cut_end()  # cut outside the API...
    append(log, "eve")  # ...then appended: the head is re-signed, the break stays in it
    assert log.problems() == [
        f"{medium.medium.where}: when line 3 was appended, the log did not end where its signed head said "
        "(changed outside the API)"
    ]


def test_only_the_deployments_key_vouches_for_the_head(medium: Tampering) -> None:
    filled(medium, 2)
    assert notes(medium.medium, Ed25519PrivateKey.generate()).problems() == [
        f"{medium.medium.head_where}: signature does not verify with the deployment's key"]


def test_appends_from_several_at_once_keep_one_chain(medium: Tampering) -> None:
    def append_some(who: int) -> None:
        log = notes(medium.other() if who % 2 else medium.medium)
        for i in range(25):
            append(log, f"t{who}-{i}")

    threads = [threading.Thread(target=append_some, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = notes(medium.medium)
    assert len(list(log.entries())) == 100
    assert log.problems() == []


def test_a_log_cut_back_to_a_saved_head_is_found_by_the_head_anchored_outside_it(
    medium: Tampering, tmp_path: Path
) -> None:
    anchors = HeadAnchors(lambda: open_evidence_store(EvidenceSettings(
        directory=tmp_path / "evidence", signing_key=tmp_path / "keys" / "evidence.pem")))
    log = notes(medium.medium, anchors=anchors)
    for i in range(3):
        append(log, f"user{i}")
    saved = medium.saved_head()
    append(log, "user3")
    append(log, "user4")
    medium.cut_end()
    medium.cut_end()
    medium.put_head_back(saved)
    assert notes(medium.medium).problems() == []  # the log and its head agree again: the chain alone is blind
    assert log.problems() == [
        f"{medium.medium.where}: ends at line 3, but its head anchored outside it says line 5 "
        "(lines cut, the head put back)"
    ]
    number, anchored = anchors.newest("notes")
    assert number == 5 and anchored is not None and anchored.lines == 5
    # Lines appended since (through the API, which also records the break) do not cover the cut up: the
    # fifth line is not the one anchored.
    for name in ("user5", "user6", "user7"):
        append(notes(medium.other()), name)
    problems = log.problems()
    assert f"{medium.medium.where}:5: not the line its head anchored outside it names (rewritten)" in problems, problems
