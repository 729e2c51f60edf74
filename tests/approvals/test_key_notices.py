"""A key's holder is told of every enrollment, confirmation and removal of their keys through the
deployment's chat webhook; a notice that cannot be delivered is retried, then logged and recorded (and
listed among the keys' problems), never dropped, and never holds up the enrollment log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pausegate.auth.key_notices import KeyNotices, chat_notifier
from pausegate.auth.keys import KeyEnrollment, ssh_key
from pausegate.config import ApiSettings, Settings, WebhookConnection
from pausegate.connectors.webhook import WebhookNotifier
from pausegate.models.people import Actor
from pausegate.reference.chat_sink import ChatSink, RunningSink
from tests.api.support import ApiWorld, api_world
from tests.approvals.test_ssh_possession import enroll_ssh
from tests.support.harness import Harness
from tests.support.polling import polled
from tests.support.signing import SshKey

CLEO = Actor(id="local:cleo", roles=["ciso"], email="cleo@example.com")
ADA = Actor(id="local:ada", roles=["admin"])
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
HOOK = "security"


@pytest_asyncio.fixture
async def sink() -> AsyncIterator[RunningSink]:
    async with RunningSink(ChatSink(hooks={HOOK})) as running:
        yield running


@pytest_asyncio.fixture
async def failing_sink() -> AsyncIterator[RunningSink]:
    async with RunningSink(ChatSink(hooks={HOOK}, error_rate=1.0, seed=7)) as running:
        yield running


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def enrolled(tmp_path: Path, key: Ed25519PrivateKey) -> tuple[KeyEnrollment, Any]:
    """cleo's SSH key, enrolled by her: the enrollment log and the change."""
    enrollment = KeyEnrollment.file(tmp_path / "keys-log.jsonl", key, lambda: NOW)
    ssh = SshKey.make(tmp_path / "ssh", "cleo")
    key_id, blob = ssh_key(ssh.path.with_name("cleo.pub").read_text())
    return enrollment, enrollment.enroll(CLEO, "ssh", key_id, blob)


def notices(tmp_path: Path, key: Ed25519PrivateKey, url: str | None) -> KeyNotices:
    notifier = WebhookNotifier(url, timeout=5.0) if url is not None else None
    return KeyNotices.file(tmp_path / "key-notices.jsonl", notifier, key, lambda: NOW, attempts=3, backoff=0.0)


class TestKeyNotices:
    async def test_the_holder_is_told_by_name_of_a_key_enrolled_in_their_name(
        self, tmp_path: Path, key: Ed25519PrivateKey, sink: RunningSink, enrolled: tuple[KeyEnrollment, Any]
    ) -> None:
        _, change = enrolled
        told = notices(tmp_path, key, sink.hook_url(HOOK))
        assert await told.deliver(change) is True
        [message] = sink.sink.received(HOOK)
        assert message.text.startswith("To local:cleo: your signing key ")
        assert message.fields == {"to": "local:cleo", "event": "key.enrolled", "key": change.key_id,
                                  "by": "local:cleo", "email": "cleo@example.com"}
        assert told.problems() == []

    async def test_an_unavailable_webhook_is_retried_then_the_notice_is_recorded_and_the_log_stands(
        self, tmp_path: Path, key: Ed25519PrivateKey, failing_sink: RunningSink,
        enrolled: tuple[KeyEnrollment, Any]
    ) -> None:
        enrollment, change = enrolled
        told = notices(tmp_path, key, failing_sink.hook_url(HOOK))
        assert await told.deliver(change) is False
        assert failing_sink.sink.received(HOOK) == []
        [recorded] = list(told.log.entries())
        assert (recorded.holder, recorded.action, recorded.key_id, recorded.attempts) == (
            "local:cleo", "key.enrolled", change.key_id, 3)
        [problem] = told.problems()
        assert problem.startswith("local:cleo was not told that key ") and "3 attempt(s)" in problem
        # The change itself is in the log, whatever chat did.
        assert change.key_id in enrollment.keys() and enrollment.problems() == []

    async def test_a_webhook_that_refuses_is_not_retried_and_the_notice_is_recorded(
        self, tmp_path: Path, key: Ed25519PrivateKey, sink: RunningSink, enrolled: tuple[KeyEnrollment, Any]
    ) -> None:
        _, change = enrolled
        told = notices(tmp_path, key, sink.hook_url("revoked"))
        assert await told.deliver(change) is False
        [recorded] = list(told.log.entries())
        assert recorded.attempts == 1 and "TargetRejectedError" in recorded.reason

    async def test_with_no_webhook_configured_every_notice_is_recorded(
        self, tmp_path: Path, key: Ed25519PrivateKey, enrolled: tuple[KeyEnrollment, Any]
    ) -> None:
        _, change = enrolled
        settings = Settings(api=ApiSettings(users_file=tmp_path / "users.json"))
        notifier, why = chat_notifier(settings)
        assert notifier is None and "no webhook connection" in why
        told = KeyNotices.file(tmp_path / "key-notices.jsonl", None, key, lambda: NOW, why_none=why)
        assert await told.deliver(change) is False
        [recorded] = list(told.log.entries())
        assert recorded.attempts == 0 and "no webhook connection" in recorded.reason

    def test_the_notifier_is_the_configured_webhook_or_the_only_one(self) -> None:
        one = {"chat": WebhookConnection(url="http://127.0.0.1:9/hooks/a")}  # type: ignore[arg-type]
        two = {**one, "other": WebhookConnection(url="http://127.0.0.1:9/hooks/b")}  # type: ignore[arg-type]
        assert chat_notifier(Settings(connections=one))[0] is not None
        assert chat_notifier(Settings(connections=two))[0] is None
        named = Settings(connections=two, api=ApiSettings(key_notices="other"))
        assert chat_notifier(named)[0] is not None
        assert "not configured" in chat_notifier(Settings(api=ApiSettings(key_notices="nowhere")))[1]


# Through the API: enrollment, confirmation and removal each tell the holder -----------------


@pytest_asyncio.fixture
async def api(harness: Harness, tmp_path: Path) -> AsyncIterator[ApiWorld]:
    async with api_world(harness, tmp_path / "api") as world:
        yield world


async def _until(check: Callable[[], bool], what: str) -> None:
    async def ask() -> bool:
        return check()

    await polled(ask, what=what, every=0.05)


async def test_enrolling_confirming_and_removing_a_key_through_the_api_tell_its_holder(
    api: ApiWorld, tmp_path: Path
) -> None:
    chat = api.harness.chat.sink
    ssh = SshKey.make(tmp_path / "ssh", "cleo")
    enrolled = await enroll_ssh(api.client("cleo"), ssh)
    assert enrolled.status_code == 201, enrolled.text
    confirmed = await api.client("ada").post(f"/v1/keys/{ssh.key_id}/confirm")
    assert confirmed.status_code == 200, confirmed.text
    removed = await api.client("cleo").delete(f"/v1/keys/{ssh.key_id}")
    assert removed.status_code == 204, removed.text

    def told() -> list[tuple[str, str, str]]:
        return [(m.fields.get("to", ""), m.fields.get("event", ""), m.fields.get("by", ""))
                for m in chat.received("security") if m.fields.get("key") == ssh.key_id]

    await _until(lambda: len(told()) == 3, "three notices to the holder")
    assert sorted(told()) == sorted([("local:cleo", "key.enrolled", "local:cleo"),
                                     ("local:cleo", "key.confirmed", "local:ada"),
                                     ("local:cleo", "key.removed", "local:cleo")])
    listed = await api.client("ada").get("/v1/keys")
    assert listed.json()["problems"] == []
