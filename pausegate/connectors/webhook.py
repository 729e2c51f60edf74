"""Notifications through a Slack-compatible incoming webhook.

The webhook URL is a credential (whoever has it can post to the channel), so it appears
in no log line, no error message and no repr; errors are raised without their httpx cause,
whose request carries the URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import structlog
from pydantic import SecretStr

from pausegate.config import WebhookConnection
from pausegate.errors import TargetRejectedError, TargetUnavailableError

log = structlog.get_logger(__name__)

# Slack's limits; longer values are truncated rather than rejected, so a long reason never
# makes a state-change notification fail.
_MAX_TEXT = 3000
_MAX_FIELD = 2000
_FIELDS_PER_BLOCK = 10
_MAX_FALLBACK = 4000


def _escape(value: str) -> str:
    # Slack mrkdwn treats these three as control characters; escaping them also stops
    # a value like "<!channel>" from pinging everyone.
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _truncate(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def slack_payload(text: str, fields: Mapping[str, str]) -> dict[str, Any]:
    """The JSON body for ``text`` and ``fields``: ``text`` for notifications and clients
    without Block Kit, and the same content as section blocks."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _truncate(_escape(text), _MAX_TEXT)}}
    ]
    items = [
        {"type": "mrkdwn", "text": _truncate(f"*{_escape(key)}*\n{_escape(value)}", _MAX_FIELD)}
        for key, value in fields.items()
    ]
    for start in range(0, len(items), _FIELDS_PER_BLOCK):
        blocks.append({"type": "section", "fields": items[start : start + _FIELDS_PER_BLOCK]})
    return {"text": _truncate(_escape(text), _MAX_FALLBACK), "blocks": blocks}


class WebhookNotifier:
    """A ``Notifier`` posting to one Slack-compatible webhook.

    With ``client`` the caller owns the connection pool (and closes it); without, each send
    uses a short-lived client, which suits notifications' low rate.
    """

    def __init__(
        self, url: str | SecretStr, timeout: float = 10.0, client: httpx.AsyncClient | None = None
    ) -> None:
        self._url = url if isinstance(url, SecretStr) else SecretStr(url)
        self._timeout = timeout
        self._client = client

    def __repr__(self) -> str:
        return f"WebhookNotifier(url=**********, timeout={self._timeout})"

    async def send(self, text: str, fields: Mapping[str, str]) -> None:
        """Post one message; raises TargetUnavailableError (retry) or TargetRejectedError."""
        payload = slack_payload(text, fields)
        if self._client is not None:
            response = await self._post(self._client, payload)
        else:
            async with httpx.AsyncClient() as client:
                response = await self._post(client, payload)
        self._check(response)
        log.info("webhook.sent", status=response.status_code, fields=len(fields))

    async def _post(self, client: httpx.AsyncClient, payload: dict[str, Any]) -> httpx.Response:
        try:
            return await client.post(
                self._url.get_secret_value(), json=payload, timeout=self._timeout, follow_redirects=False
            )
        except httpx.TimeoutException:
            log.warning("webhook.timeout", timeout=self._timeout)
            raise TargetUnavailableError(f"webhook did not answer within {self._timeout}s") from None
        except httpx.TransportError as exc:
            # The exception's text may quote the URL; its type says enough.
            log.warning("webhook.unreachable", error=type(exc).__name__)
            raise TargetUnavailableError(f"webhook unreachable ({type(exc).__name__})") from None

    def _check(self, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        # Slack answers errors with a short token such as "invalid_payload" or "no_service".
        body = _truncate(response.text.strip(), 200)
        log.warning("webhook.failed", status=status, body=body)
        if status == 429:
            retry_after = response.headers.get("retry-after")
            hint = f", retry after {retry_after}s" if retry_after else ""
            raise TargetUnavailableError(f"webhook rate-limited (HTTP 429{hint}): {body}")
        if status >= 500:
            raise TargetUnavailableError(f"webhook failed (HTTP {status}): {body}")
        # 4xx and redirects: the URL or the payload is wrong, and sending again cannot help.
        raise TargetRejectedError(f"webhook refused the message (HTTP {status}): {body}")


def notifier_from_connection(
    conn: WebhookConnection, client: httpx.AsyncClient | None = None
) -> WebhookNotifier:
    """The notifier for a configured webhook connection."""
    return WebhookNotifier(conn.url, timeout=conn.timeout_seconds, client=client)
