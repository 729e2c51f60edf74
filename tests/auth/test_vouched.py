"""Which user rows the users' signed change log vouches for (``pausegate.auth.users.vouched``), as a pure rule."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.auth.local import LocalUser
from pausegate.auth.users.log import OUTSIDE, Action, UserChange, UserDelta, user_log
from pausegate.auth.users.store import delta
from pausegate.auth.users.vouched import Vouched, vouched
from pausegate.records import chain
from pausegate.records.files import FileMedium

KEY = Ed25519PrivateKey.generate()


def user(name: str, roles: list[str], token: str = "a") -> LocalUser:
    return LocalUser(name=name, roles=roles, token_sha256=token * 64, created_at=datetime.now(UTC))


class Log:
    def __init__(self, tmp_path: Path) -> None:
        self.medium = FileMedium(tmp_path / "users-log.jsonl")
        self.log = user_log(self.medium, KEY)

    def change(self, action: Action, *changes: UserDelta) -> None:
        self.log.append(lambda prev: UserChange(at=datetime.now(UTC), by="local:ada", action=action,
                                                changes=list(changes), users_sha256="0" * 64, prev=prev))

    def lines(self) -> list[tuple[int, bytes]]:
        return list(enumerate(self.medium.path.read_bytes().splitlines(), start=1))

    def vouched(self) -> Vouched:
        return vouched(self.lines(), self.medium.read_head(), KEY.public_key())


class TestVouched:
    def test_a_row_counts_only_as_the_newest_api_made_change_left_its_user(self, tmp_path: Path) -> None:
        log = Log(tmp_path)
        ciso, demoted, retokened = user("mal", ["ciso"]), user("mal", ["cto"]), user("eve", ["admin"], "b")
        log.change("user.added", delta(ciso))
        log.change("user.added", delta(user("eve", ["admin"])))
        log.change("user.roles_changed", delta(demoted))
        log.change("user.replaced", delta(retokened))
        log.change("user.added", delta(user("trent", ["cpo"])))
        log.change("user.removed", UserDelta(name="trent", roles=None))
        found = log.vouched()
        assert found.matches(demoted) and found.matches(retokened)
        assert not found.matches(ciso) and not found.matches(user("eve", ["admin"]))
        assert not found.matches(user("trent", ["cpo"])) and not found.matches(user("nobody", ["cpo"]))

    def test_a_change_found_made_outside_the_api_vouches_for_nobody(self, tmp_path: Path) -> None:
        log = Log(tmp_path)
        log.change("user.added", delta(user("mal", ["cto"])))
        log.change(OUTSIDE, delta(user("mal", ["admin"])))
        found = log.vouched()
        assert found.matches(user("mal", ["cto"])) and not found.matches(user("mal", ["admin"]))

    def test_a_user_named_past_the_signed_head_proves_nobody(self, tmp_path: Path) -> None:
        log = Log(tmp_path)
        log.change("user.added", delta(user("mal", ["ciso"])))
        log.change("user.added", delta(user("bob", ["cto"])))
        head = log.medium.read_head()
        log.change("user.roles_changed", delta(user("mal", ["cto"])))
        # An older head put back: the demotion is past it.
        found = vouched(log.lines(), head, KEY.public_key())
        assert not found.matches(user("mal", ["ciso"])) and not found.matches(user("mal", ["cto"]))
        assert found.matches(user("bob", ["cto"]))

    def test_changes_before_a_break_in_the_chain_vouch_for_nobody(self, tmp_path: Path) -> None:
        log = Log(tmp_path)
        log.change("user.added", delta(user("mal", ["cto"])))
        log.change("user.added", delta(user("bob", ["cto"])))
        log.change("user.added", delta(user("eve", ["cpo"])))
        lines = log.lines()
        # The first line edited in place (in the database: its row rewritten): mal made a ciso.
        lines[0] = (1, lines[0][1].replace(b'"cto"', b'"ciso"'))
        found = vouched(lines, log.medium.read_head(), KEY.public_key())
        assert found.problems and not found.nobody
        assert not found.matches(user("mal", ["ciso"])) and not found.matches(user("mal", ["cto"]))
        assert found.matches(user("bob", ["cto"])) and found.matches(user("eve", ["cpo"]))

    def test_a_head_the_deployment_did_not_sign_vouches_for_nobody(self, tmp_path: Path) -> None:
        log = Log(tmp_path)
        log.change("user.added", delta(user("mal", ["ciso"])))
        head = log.medium.read_head()
        assert head is not None
        forged = chain.sign_head(Ed25519PrivateKey.generate(), head.lines, head.last, head.breaks)
        found = vouched(log.lines(), forged, KEY.public_key())
        assert found.nobody and not found.matches(user("mal", ["ciso"]))
