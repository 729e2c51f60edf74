"""The webhook notifier against the reference chat sink, and its error mapping."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest
import structlog
from pydantic import SecretStr

from pausegate.config import WebhookConnection
from pausegate.connectors.interfaces import Notifier
from pausegate.connectors.webhook import WebhookNotifier, notifier_from_connection, slack_payload
from pausegate.errors import TargetRejectedError, TargetUnavailableError
from pausegate.reference.chat_sink import ChatSink, RunningSink

HOOK = "T000/B000/secret-token"


def mock_client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


# Against the reference receiver, over a real socket ------------------------------------------


async def test_send_reaches_the_chat_sink(chat_sink: RunningSink) -> None:
    notifier: Notifier = WebhookNotifier(chat_sink.hook_url(HOOK), timeout=5.0)
    await notifier.send("Pause started: employee-telemetry", {"state": "CONTAINING", "commander": "alice"})
    [message] = chat_sink.sink.received(HOOK)
    assert message.text == "Pause started: employee-telemetry"
    assert message.fields == {"state": "CONTAINING", "commander": "alice"}
    assert message.payload["blocks"][0]["text"]["text"] == "Pause started: employee-telemetry"


async def test_messages_are_readable_over_http(chat_sink: RunningSink) -> None:
    async with httpx.AsyncClient(base_url=chat_sink.url) as client:
        notifier = WebhookNotifier(chat_sink.hook_url(HOOK), timeout=5.0, client=client)
        await notifier.send("one", {})
        await notifier.send("two", {"k": "v"})
        listed = (await client.get("/messages", params={"hook": HOOK})).json()
        assert [m["text"] for m in listed] == ["one", "two"]
        assert (await client.delete("/messages")).status_code == 200
        assert (await client.get("/messages")).json() == []


async def test_unknown_hook_is_rejected(chat_sink: RunningSink) -> None:
    notifier = WebhookNotifier(chat_sink.hook_url("T000/B000/revoked"), timeout=5.0)
    with pytest.raises(TargetRejectedError, match=r"HTTP 404.*no_service"):
        await notifier.send("hello", {})
    assert chat_sink.sink.received() == []


async def test_latency_beyond_timeout_is_unavailable() -> None:
    async with RunningSink(ChatSink(latency=1.0)) as slow:
        notifier = WebhookNotifier(slow.hook_url("h"), timeout=0.1)
        with pytest.raises(TargetUnavailableError, match=r"did not answer within 0\.1s"):
            await notifier.send("hello", {})


async def test_error_rate_produces_retryable_errors() -> None:
    async with RunningSink(ChatSink(error_rate=1.0, seed=7)) as flaky:
        notifier = WebhookNotifier(flaky.hook_url("h"), timeout=5.0)
        for _ in range(6):
            with pytest.raises(TargetUnavailableError, match=r"HTTP (429|500)"):
                await notifier.send("hello", {})
        assert flaky.sink.received() == []


async def test_sink_with_partial_error_rate_records_only_successes() -> None:
    async with RunningSink(ChatSink(error_rate=0.5, seed=1)) as flaky:
        notifier = WebhookNotifier(flaky.hook_url("h"), timeout=5.0)
        delivered = 0
        for i in range(30):
            try:
                await notifier.send(f"m{i}", {})
                delivered += 1
            except TargetUnavailableError:
                pass
        assert 0 < delivered < 30
        assert len(flaky.sink.received("h")) == delivered


async def test_connection_refused_is_unavailable(chat_sink: RunningSink) -> None:
    url = chat_sink.hook_url(HOOK)
    await chat_sink.stop()
    with pytest.raises(TargetUnavailableError, match="unreachable"):
        await WebhookNotifier(url, timeout=2.0).send("hello", {})


async def test_sink_rejects_malformed_payloads(chat_sink: RunningSink) -> None:
    async with httpx.AsyncClient() as client:
        bad_json = await client.post(
            chat_sink.hook_url(HOOK), content=b"{", headers={"content-type": "application/json"}
        )
        no_text = await client.post(chat_sink.hook_url(HOOK), json={"attachments": []})
    assert (bad_json.status_code, bad_json.text) == (400, "invalid_payload")
    assert (no_text.status_code, no_text.text) == (400, "invalid_payload")
    assert chat_sink.sink.received() == []


# Error mapping, with a mock transport ---------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, TargetUnavailableError),
        (502, TargetUnavailableError),
        (503, TargetUnavailableError),
        (429, TargetUnavailableError),
        (400, TargetRejectedError),
        (403, TargetRejectedError),
        (404, TargetRejectedError),
        (410, TargetRejectedError),
        (301, TargetRejectedError),
    ],
)
async def test_status_mapping(status: int, error: type[Exception]) -> None:
    client = mock_client(lambda request: httpx.Response(status, text="nope"))
    with pytest.raises(error, match=f"HTTP {status}"):
        await WebhookNotifier("https://hooks.example/services/x", client=client).send("t", {})


async def test_rate_limit_mentions_retry_after() -> None:
    client = mock_client(
        lambda request: httpx.Response(429, headers={"Retry-After": "30"}, text="rate_limited")
    )
    with pytest.raises(TargetUnavailableError, match="retry after 30s"):
        await WebhookNotifier("https://hooks.example/services/x", client=client).send("t", {})


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("boom"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("bad"),
        httpx.ReadError("x"),
    ],
)
async def test_transport_failures_are_unavailable(exc: Exception) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(TargetUnavailableError):
        await WebhookNotifier("https://hooks.example/services/x", client=mock_client(fail)).send("t", {})


async def test_success_posts_json_payload() -> None:
    seen: list[httpx.Request] = []

    def ok(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="ok")

    await WebhookNotifier("https://hooks.example/services/x", client=mock_client(ok)).send("t", {"a": "b"})
    [request] = seen
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == slack_payload("t", {"a": "b"})


# The URL is a secret --------------------------------------------------------------------------

SECRET_URL = "https://hooks.example/services/T123/B456/very-secret-token"


@pytest.mark.parametrize("status", [200, 404, 500])
async def test_url_never_logged_nor_in_errors(status: int) -> None:
    client = mock_client(lambda request: httpx.Response(status, text="x"))
    notifier = WebhookNotifier(SECRET_URL, client=client)
    with structlog.testing.capture_logs() as logs:
        try:
            await notifier.send("t", {})
        except (TargetRejectedError, TargetUnavailableError) as exc:
            assert "very-secret-token" not in str(exc)
            # No chained httpx exception: its request would carry the URL into tracebacks.
            assert exc.__cause__ is None
            assert exc.__context__ is None or exc.__suppress_context__
    assert logs, "the notifier logs its outcome"
    assert "very-secret-token" not in repr(logs)
    assert "very-secret-token" not in repr(notifier)


async def test_url_not_in_transport_error() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {request.url}")

    with structlog.testing.capture_logs() as logs, pytest.raises(TargetUnavailableError) as info:
        await WebhookNotifier(SECRET_URL, client=mock_client(fail)).send("t", {})
    assert "very-secret-token" not in str(info.value)
    assert info.value.__suppress_context__ and info.value.__cause__ is None
    assert "very-secret-token" not in repr(logs)


async def test_notifier_from_connection_uses_secret_url_and_timeout() -> None:
    seen: list[httpx.Request] = []

    def ok(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="ok")

    conn = WebhookConnection(url=SecretStr(SECRET_URL), timeout_seconds=3.5)
    notifier = notifier_from_connection(conn, client=mock_client(ok))
    await notifier.send("t", {})
    assert str(seen[0].url) == SECRET_URL
    assert seen[0].extensions["timeout"]["read"] == 3.5
    assert "very-secret-token" not in repr(notifier)


# The payload ----------------------------------------------------------------------------------


def test_payload_escapes_and_chunks_fields() -> None:
    fields = {f"k{i}": f"<!channel> & v{i}" for i in range(23)}
    payload = slack_payload("Pause <b> & done", fields)
    assert payload["text"] == "Pause &lt;b&gt; &amp; done"
    field_blocks = [b for b in payload["blocks"] if "fields" in b]
    assert [len(b["fields"]) for b in field_blocks] == [10, 10, 3]
    assert field_blocks[0]["fields"][0]["text"] == "*k0*\n&lt;!channel&gt; &amp; v0"


def test_payload_truncates_long_values() -> None:
    payload = slack_payload("x" * 10_000, {"reason": "y" * 10_000})
    assert len(payload["blocks"][0]["text"]["text"]) == 3000
    assert len(payload["blocks"][1]["fields"][0]["text"]) == 2000
    assert payload["blocks"][0]["text"]["text"].endswith("…")


async def test_concurrent_sends_all_arrive(chat_sink: RunningSink) -> None:
    notifier = WebhookNotifier(chat_sink.hook_url(HOOK), timeout=5.0)
    await asyncio.gather(*(notifier.send(f"m{i}", {"i": str(i)}) for i in range(20)))
    assert sorted(m.text for m in chat_sink.sink.received(HOOK)) == sorted(f"m{i}" for i in range(20))
