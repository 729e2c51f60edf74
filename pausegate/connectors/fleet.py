"""The fleet contract over HTTP (docs/fleet-openapi.json), with httpx.

Errors become the project's own:
    network error, timeout, 5xx, 408, 429     -> TargetUnavailableError (retry)
    any other 4xx (401, 404, 409, 422, ...)   -> TargetRejectedError, with the fleet's message
    a 2xx body that breaks the contract        -> TargetRejectedError (the same request cannot do better)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import structlog
from pydantic import BaseModel, ValidationError

from pausegate.config import FleetConnection
from pausegate.errors import TargetRejectedError, TargetUnavailableError
from pausegate.logging import redact
from pausegate.models.collection import CollectionProfile, CollectionRequest
from pausegate.models.fleet import (
    AgentPage,
    AgentState,
    AuditRecord,
    BatchRequest,
    BatchResult,
    SwitchRequest,
    SwitchState,
)

log = structlog.get_logger("pausegate.connectors.fleet")

M = TypeVar("M", bound=BaseModel)

_TRANSIENT_4XX = frozenset({408, 425, 429})
POOL_LIMITS = httpx.Limits(max_connections=128, max_keepalive_connections=128, keepalive_expiry=60.0)


def _message(response: httpx.Response) -> str:
    """The fleet's explanation: FastAPI-style ``detail`` (a string or a list of problems), else the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg', '')}"
            if isinstance(d, dict)
            else str(d)
            for d in detail
        )
    return str(body)[:500]


class HttpFleet:
    """A ``FleetConnector`` speaking the fleet contract with one ``httpx.AsyncClient``.

    Pass ``client`` to share a configured client (its owner closes it), or ``transport`` to
    let this connector build its own client on it (``httpx.MockTransport``,
    ``httpx.ASGITransport``); close that one with ``aclose()`` or ``async with``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if client is not None and transport is not None:
            raise ValueError("pass either client or transport, not both")
        self._base_url = base_url.rstrip("/")
        # What logs and errors show: the URL without credentials (it may carry user:password@).
        self.base_url = redact(self._base_url)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._owns_client = client is None
        # Connections kept open for as many requests as the activities send at once (bulk lanes, listings,
        # both workers): a halt never waits on a new TCP (and TLS) handshake.
        self._client = client or httpx.AsyncClient(transport=transport, timeout=timeout, limits=POOL_LIMITS)
        self._timeout = httpx.Timeout(timeout)
        self._log = log.bind(fleet=self.base_url)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> HttpFleet:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- the contract --------------------------------------------------------------------

    async def list_agents(
        self,
        program: str,
        *,
        page_token: str | None = None,
        page_size: int = 1000,
        state: AgentState | None = None,
    ) -> AgentPage:
        params: dict[str, str | int] = {"page_size": page_size}
        if page_token is not None:
            params["page_token"] = page_token
        if state is not None:
            params["state"] = AgentState(state).value
        return await self._call("GET", program, "agents", AgentPage, params=params)

    async def get_switch(self, program: str) -> SwitchState:
        return await self._call("GET", program, "switch", SwitchState)

    async def set_switch(self, program: str, request: SwitchRequest) -> SwitchState:
        return await self._call("PUT", program, "switch", SwitchState, body=request)

    async def get_collection(self, program: str) -> CollectionProfile:
        return await self._call("GET", program, "collection", CollectionProfile)

    async def set_collection(self, program: str, request: CollectionRequest) -> CollectionProfile:
        return await self._call("PUT", program, "collection", CollectionProfile, body=request)

    async def halt(self, program: str, request: BatchRequest) -> BatchResult:
        return await self._call("POST", program, "halt", BatchResult, body=request)

    async def resume(self, program: str, request: BatchRequest) -> BatchResult:
        return await self._call("POST", program, "resume", BatchResult, body=request)

    async def audit_trail(self, program: str, start: datetime, end: datetime) -> AsyncIterator[AuditRecord]:
        """The fleet's audit records with ``start <= at < end``, read line by line as they arrive."""
        url = self._url(program, "audit")
        params = {"start": start.isoformat(), "end": end.isoformat()}
        try:
            async with self._client.stream(
                "GET", url, params=params, headers=self._headers, timeout=self._timeout
            ) as response:
                if response.is_error:
                    await response.aread()
                    self._raise_for(response, "GET", url)
                async for line in response.aiter_lines():
                    if line.strip():
                        yield self._parse(AuditRecord, line, url)
        except httpx.TransportError as exc:
            # Includes a stream cut off half-way: the caller restarts the window.
            raise self._unavailable("GET", url, exc) from exc

    # --- plumbing ------------------------------------------------------------------------

    def _url(self, program: str, resource: str) -> str:
        return f"{self._base_url}/v1/programs/{quote(program, safe='')}/{resource}"

    async def _call(
        self,
        method: str,
        program: str,
        resource: str,
        model: type[M],
        *,
        body: BaseModel | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> M:
        url = self._url(program, resource)
        kwargs: dict[str, Any] = {"headers": self._headers, "timeout": self._timeout}
        if body is not None:
            kwargs["content"] = body.model_dump_json()
            kwargs["headers"] = {**self._headers, "Content-Type": "application/json"}
        if params is not None:
            kwargs["params"] = dict(params)
        try:
            response = await self._client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            raise self._unavailable(method, url, exc) from exc
        if response.is_error:
            self._raise_for(response, method, url)
        return self._parse(model, response.content, url)

    def _unavailable(self, method: str, url: str, exc: httpx.TransportError) -> TargetUnavailableError:
        kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "unreachable"
        url = redact(url)
        self._log.warning("fleet.unavailable", method=method, url=url, error=redact(repr(exc)))
        return TargetUnavailableError(f"fleet {kind}: {method} {url}: {redact(repr(exc))}")

    def _raise_for(self, response: httpx.Response, method: str, url: str) -> None:
        status = response.status_code
        url = redact(url)
        message = f"fleet answered {status} to {method} {url}: {redact(_message(response))}"
        self._log.warning("fleet.error", method=method, url=url, status=status)
        if status >= 500 or status in _TRANSIENT_4XX:
            retry_after = response.headers.get("Retry-After")
            raise TargetUnavailableError(message + (f" (retry after {retry_after}s)" if retry_after else ""))
        raise TargetRejectedError(message)

    @staticmethod
    def _parse(model: type[M], data: bytes | str, url: str) -> M:
        try:
            return model.model_validate_json(data)
        except ValidationError as exc:
            raise TargetRejectedError(
                f"fleet answer from {redact(url)} does not follow the contract: {redact(str(exc))}"
            ) from exc


def fleet_from_connection(
    conn: FleetConnection, *, transport: httpx.AsyncBaseTransport | None = None
) -> HttpFleet:
    """The connector for a configured fleet connection (the token stays inside the connector)."""
    return HttpFleet(
        conn.url.get_secret_value(),
        token=conn.token.get_secret_value() if conn.token else None,
        timeout=conn.timeout_seconds,
        transport=transport,
    )
