"""The HTTP client the CLI (and scripts) use to talk to the pausegate API.

Configuration comes from ``PAUSEGATE_API_URL`` / ``PAUSEGATE_TOKEN``, else from a TOML file
(``PAUSEGATE_CLI_CONFIG``, default ``~/.config/pausegate/cli.toml``) with ``api_url`` and ``token``.
Every action carries an ``Idempotency-Key``, so the client can retry a 503 or a dropped
connection without the action ever applying twice.
"""

from __future__ import annotations

import math
import os
import time
import tomllib
import uuid
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter, ValidationError

from pausegate.api.models import PauseSummary, PauseView, Receipt, RefusalsView, TriggerResponse, WhoAmI
from pausegate.auth.users.views import IssuedUser, UserLogView, UserView
from pausegate.errors import ApiError, ApiUnreachable, ConfigError, PausegateError
from pausegate.models.break_glass import BreakGlassView
from pausegate.models.checklist import ItemStatus
from pausegate.models.drill import DrillState
from pausegate.models.watch import WatchReceiptOut, WatchState

URL_ENV = "PAUSEGATE_API_URL"
TOKEN_ENV = "PAUSEGATE_TOKEN"
CONFIG_ENV = "PAUSEGATE_CLI_CONFIG"
DEFAULT_CONFIG = Path("~/.config/pausegate/cli.toml")
DEFAULT_URL = "http://127.0.0.1:8700"

M = TypeVar("M")
_SUMMARIES = TypeAdapter(list[PauseSummary])
_CHECKLIST = TypeAdapter(list[ItemStatus])
_USERS = TypeAdapter(list[UserView])


class UnreadableAnswer(PausegateError):
    """The API answered 2xx with JSON that does not fit the API's own response model."""


class Reply(Generic[M]):
    """One answer of the API: ``json`` exactly as it came (what ``--json`` prints), and ``model``,
    the same read into the API's response model (read when first asked for)."""

    def __init__(self, json: Any, read: Callable[[Any], M]) -> None:
        self.json = json
        self._read = read

    @cached_property
    def model(self) -> M:
        try:
            return self._read(self.json)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the top"
            raise UnreadableAnswer(
                f"the API answered in a form this CLI cannot read ({exc.error_count()} problem(s), first at "
                f"{where}: {first['msg']}); are the CLI and the API the same version?"
            ) from exc


def load_client_config(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(API URL, token) from the environment or the CLI config file; ``ConfigError`` without a token."""
    env = os.environ if env is None else env
    path = Path(env.get(CONFIG_ENV) or DEFAULT_CONFIG).expanduser()
    file: dict[str, Any] = {}
    if path.exists():
        try:
            file = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, OSError) as exc:
            raise ConfigError(f"{path}: cannot read the CLI configuration: {exc}") from exc
    elif env.get(CONFIG_ENV):
        raise ConfigError(f"{path}: CLI configuration file not found")
    url = env.get(URL_ENV) or str(file.get("api_url") or DEFAULT_URL)
    token = env.get(TOKEN_ENV) or str(file.get("token") or "")
    if not token:
        raise ConfigError(f'no API token: set {TOKEN_ENV} or put token = "…" in {path}')
    return url.rstrip("/"), token


MAX_RETRY_WAIT_S = 30.0


def retry_after(value: str | None) -> float | None:
    """The seconds a ``Retry-After`` header asks for; None unless it is a finite, non-negative number
    (an HTTP date or anything else is not trusted to set the wait)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip()[:40])
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _still_asked_to_wait(response: httpx.Response, attempts: int) -> str:
    """What the final refusal adds for people when the API still asked to wait after the last attempt."""
    if response.status_code not in (429, 503) or "Retry-After" not in response.headers:
        return ""
    asked = response.headers["Retry-After"][:40]
    return (f" (after {attempts} attempts the API still answered {response.status_code} with "
            f"Retry-After: {asked!r}; waits are capped at {MAX_RETRY_WAIT_S:.0f} s)")


class PausegateClient:
    """One httpx client per CLI run; ``transport`` lets tests call an app in-process."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 60.0,
        retries: int = 3,
        retry_delay: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            transport=transport,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )
        self.retries = retries
        self.retry_delay = retry_delay
        self._sleep = sleep

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PausegateClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        accept: str = "application/json",
    ) -> httpx.Response:
        headers = {"Accept": accept}
        if method == "POST":
            headers["Idempotency-Key"] = uuid.uuid4().hex
        delay = self.retry_delay
        for attempt in range(1, self.retries + 1):
            try:
                response = self._http.request(method, path, json=json, params=params, headers=headers)
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise ApiUnreachable(f"cannot reach the API at {self._http.base_url}: {exc}") from exc
            else:
                # 503: the API or Temporal is busy; 429: this caller's share is used up. Neither applied
                # anything, and the Idempotency-Key stays the same, so a retry cannot apply it twice.
                if response.status_code not in (429, 503) or attempt == self.retries:
                    break
                delay = max(delay, retry_after(response.headers.get("Retry-After")) or delay)
            # Whatever the server asks, one wait is bounded: a forged or absurd Retry-After must not
            # hang (or crash) the kill switch's client.
            self._sleep(min(delay, MAX_RETRY_WAIT_S))
            delay = min(delay * 2, MAX_RETRY_WAIT_S)
        if response.status_code >= 400:
            waited = _still_asked_to_wait(response, self.retries)
            try:
                body = response.json()
                raise ApiError(
                    response.status_code,
                    str(body.get("error", "error")),
                    str(body.get("detail", "")) + waited,
                    problems=[str(p) for p in body.get("problems", [])],
                )
            except ValueError:
                raise ApiError(response.status_code, "error", response.text[:500] + waited) from None
        return response

    def _get(self, path: str, read: Callable[[Any], M], params: dict[str, Any] | None = None) -> Reply[M]:
        return Reply(self._request("GET", path, params=params).json(), read)

    def _post(self, path: str, body: Any, read: Callable[[Any], M]) -> Reply[M]:
        return Reply(self._request("POST", path, json=body).json(), read)

    # ------------------------------------------------------------ reading

    def whoami(self) -> Reply[WhoAmI]:
        return self._get("/v1/whoami", WhoAmI.model_validate)

    def pauses(self) -> Reply[list[PauseSummary]]:
        return self._get("/v1/pauses", _SUMMARIES.validate_python)

    def refusals(self, *, program: str | None = None, limit: int = 100) -> Reply[RefusalsView]:
        params: dict[str, Any] = {"limit": limit}
        if program is not None:
            params["program"] = program
        return self._get("/v1/refusals", RefusalsView.model_validate, params)

    def status(self, program: str, *, scope: bool = False) -> Reply[PauseView]:
        params = {"scope": "true"} if scope else None
        return self._get(f"/v1/pauses/{program}", PauseView.model_validate, params)

    def checklist(self, program: str) -> Reply[list[ItemStatus]]:
        return self._get(f"/v1/pauses/{program}/checklist", _CHECKLIST.validate_python)

    def report(self, program: str, *, format: str = "json") -> Any:
        """The final report: Markdown text, or its JSON document."""
        accept = "text/markdown" if format == "markdown" else "application/json"
        response = self._request("GET", f"/v1/pauses/{program}/report", params={"format": format}, accept=accept)
        return response.text if format == "markdown" else response.json()

    def data_subjects(self, program: str) -> Any:
        """Whose data was readable in the exposure window: the list the pause recorded (review roles only)."""
        return self._request("GET", f"/v1/pauses/{program}/exposure/data-subjects").json()

    # ------------------------------------------------------------ acting

    def trigger(self, program: str, reason: str, severity: str = "high") -> Reply[TriggerResponse]:
        body = {"program": program, "reason": reason, "severity": severity}
        return self._post("/v1/pauses", body, TriggerResponse.model_validate)

    def complete(self, program: str, item: str, evidence: list[dict[str, Any]], note: str = "") -> Reply[Receipt]:
        body = {"evidence": evidence, "note": note}
        return self._post(f"/v1/pauses/{program}/checklist/{item}", body, Receipt.model_validate)

    def propose(self, program: str, plan: dict[str, Any]) -> Reply[Receipt]:
        return self._post(f"/v1/pauses/{program}/plan", plan, Receipt.model_validate)

    def approve(self, program: str, digest: str, *, role: str | None = None, comment: str = "",
                envelope: dict[str, Any] | None = None) -> Reply[Receipt]:
        body: dict[str, Any] = {"digest": digest, "comment": comment}
        if role:
            body["role"] = role
        if envelope is not None:
            body["envelope"] = envelope
        return self._post(f"/v1/pauses/{program}/approvals", body, Receipt.model_validate)

    def keys(self) -> Reply[dict[str, Any]]:
        return self._get("/v1/keys", dict)

    def ssh_challenge(self, public_key: str) -> Reply[dict[str, Any]]:
        return self._post("/v1/keys/ssh/challenge", {"public_key": public_key}, dict)

    def enroll_ssh_key(self, public_key: str, challenge: str, signature: str) -> Reply[dict[str, Any]]:
        return self._post("/v1/keys/ssh", {"public_key": public_key, "challenge": challenge,
                                           "signature": signature}, dict)

    def confirm_key(self, key_id: str) -> Reply[dict[str, Any]]:
        return self._post(f"/v1/keys/{key_id}/confirm", {}, dict)

    def remove_key(self, key_id: str) -> None:
        self._request("DELETE", f"/v1/keys/{key_id}")

    def reject(self, program: str, reason: str, *, role: str | None = None,
               envelope: dict[str, Any] | None = None) -> Reply[Receipt]:
        body: dict[str, Any] = {"reason": reason}
        if role:
            body["role"] = role
        if envelope is not None:
            body["envelope"] = envelope
        return self._post(f"/v1/pauses/{program}/plan/reject", body, Receipt.model_validate)

    def waive(self, program: str, reason: str, *, agent_ids: list[str], all_unconfirmed: bool) -> Reply[Receipt]:
        body = {"reason": reason, "agent_ids": agent_ids, "all_unconfirmed": all_unconfirmed}
        return self._post(f"/v1/pauses/{program}/waivers", body, Receipt.model_validate)

    def waive_residual(self, program: str, dataset: str, reason: str) -> Reply[Receipt]:
        body = {"dataset": dataset, "reason": reason}
        return self._post(f"/v1/pauses/{program}/residual-waivers", body, Receipt.model_validate)

    def retry_step(self, program: str, step: str) -> Reply[Receipt]:
        return self._post(f"/v1/pauses/{program}/blocked-steps/retry", {"step": step}, Receipt.model_validate)

    def waive_step(self, program: str, step: str, reason: str) -> Reply[Receipt]:
        body = {"step": step, "reason": reason}
        return self._post(f"/v1/pauses/{program}/blocked-steps/waive", body, Receipt.model_validate)

    def request_break_glass(self, program: str, body: dict[str, Any]) -> Reply[Receipt]:
        return self._post(f"/v1/pauses/{program}/break-glass", body, Receipt.model_validate)

    def approve_break_glass(self, program: str, grant: str) -> Reply[Receipt]:
        return self._post(f"/v1/pauses/{program}/break-glass/{grant}/approve", {}, Receipt.model_validate)

    def end_break_glass(self, program: str, grant: str, reason: str) -> Reply[Receipt]:
        return self._post(f"/v1/pauses/{program}/break-glass/{grant}/end", {"reason": reason}, Receipt.model_validate)

    def break_glass(self, program: str) -> Reply[BreakGlassView]:
        return self._get(f"/v1/pauses/{program}/break-glass", BreakGlassView.model_validate)

    def watch(self, program: str) -> Reply[WatchState]:
        return self._get(f"/v1/pauses/{program}/watch", WatchState.model_validate)

    def withdraw_consent(self, program: str, employee: str, reason: str) -> Reply[WatchReceiptOut]:
        body = {"employee": employee, "reason": reason}
        return self._post(f"/v1/pauses/{program}/watch/consent-withdrawals", body, WatchReceiptOut.model_validate)

    def start_drill(self, program: str, reason: str) -> Reply[DrillState]:
        return self._post(f"/v1/drills/{program}", {"reason": reason}, DrillState.model_validate)

    def drill(self, program: str) -> Reply[DrillState]:
        return self._get(f"/v1/drills/{program}", DrillState.model_validate)

    def stop_drill(self, program: str, reason: str) -> Reply[dict[str, Any]]:
        return self._post(f"/v1/drills/{program}/stop", {"reason": reason}, dict)

    def schedule_drills(self, program: str) -> Reply[dict[str, Any]]:
        return self._post(f"/v1/drills/{program}/schedule", {}, dict)

    def decommission(self, program: str, reason: str, *, role: str | None = None) -> Reply[Receipt]:
        body: dict[str, Any] = {"reason": reason}
        if role:
            body["role"] = role
        return self._post(f"/v1/pauses/{program}/decommission", body, Receipt.model_validate)

    # ------------------------------------------------------------ local users (admins)

    def add_user(self, name: str, roles: list[str], *, replace: bool = False) -> Reply[IssuedUser]:
        body = {"name": name, "roles": roles, "replace": replace}
        return self._post("/v1/users", body, IssuedUser.model_validate)

    def users(self) -> Reply[list[UserView]]:
        return self._get("/v1/users", _USERS.validate_python)

    def set_roles(self, name: str, roles: list[str]) -> Reply[UserView]:
        response = self._request("PUT", f"/v1/users/{quote(name, safe='')}/roles", json={"roles": roles})
        return Reply(response.json(), UserView.model_validate)

    def remove_user(self, name: str) -> None:
        self._request("DELETE", f"/v1/users/{quote(name, safe='')}")

    def user_log(self, *, limit: int = 100) -> Reply[UserLogView]:
        return self._get("/v1/users/log", UserLogView.model_validate, {"limit": limit})
