"""The console's pure parts: sessions, redirects after sign-in, event framing, the plan form, and how
it is mounted into the API's app."""

from __future__ import annotations

from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request
from temporalio.service import RPCError, RPCStatusCode

from pausegate import app as faces
from pausegate.api import app as api_app
from pausegate.auth import CombinedAuthenticator
from pausegate.config import Settings
from pausegate.console import ConsoleSessions, ConsoleState
from pausegate.console.bridge import Refusal, refusal_of
from pausegate.console.forms import Form, grant_line, parse_grant, plan_from
from pausegate.console.pages import local_next
from pausegate.console.routes.events import event
from pausegate.console.sessions import SESSION_COOKIE, SessionPolicy, SessionStore
from pausegate.errors import ActionRefused, EvidenceError, Overloaded, PauseNotFound


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class TestSessions:
    def test_a_session_ends_after_its_idle_timeout_and_is_forgotten(self) -> None:
        clock = Clock()
        store = SessionStore(SessionPolicy(idle_seconds=60, lifetime_seconds=3600), clock=clock)
        sid, _ = store.open("local:ann", "pgt_x")
        clock.now += 59
        assert store.get(sid) is not None  # touched: idle time starts again
        clock.now += 59
        assert store.get(sid) is not None
        clock.now += 61
        assert store.get(sid) is None
        assert len(store) == 0

    def test_a_session_ends_at_its_lifetime_however_active(self) -> None:
        clock = Clock()
        store = SessionStore(SessionPolicy(idle_seconds=60, lifetime_seconds=100), clock=clock)
        sid, _ = store.open("local:ann", "pgt_x")
        for _ in range(3):
            clock.now += 30
            assert store.get(sid) is not None
        clock.now += 11
        assert store.get(sid) is None

    def test_peeking_does_not_keep_a_session_alive(self) -> None:
        clock = Clock()
        store = SessionStore(SessionPolicy(idle_seconds=60, lifetime_seconds=3600), clock=clock)
        sid, _ = store.open("local:ann", "pgt_x")
        clock.now += 40
        assert store.peek(sid) is not None
        clock.now += 40  # 80 s since the session was last used: peeking at 40 s did not count as use
        assert store.peek(sid) is None and store.get(sid) is None

    def test_only_the_id_is_a_key_and_unknown_ids_find_nothing(self) -> None:
        store = SessionStore()
        sid, session = store.open("local:ann", "pgt_x")
        assert store.get(sid) is session
        assert store.get(session.csrf) is None and store.get(sid[:-1]) is None and store.get("x" * 500) is None
        assert sid not in repr(store._sessions) and "pgt_x" not in repr(session)

    def test_one_person_holds_a_bounded_number_of_sessions(self) -> None:
        clock = Clock()
        store = SessionStore(SessionPolicy(per_actor=3), clock=clock)
        ids = []
        for _ in range(5):
            clock.now += 1
            ids.append(store.open("local:ann", "pgt_x")[0])
        other, _ = store.open("local:bob", "pgt_y")
        assert [store.get(i) is not None for i in ids] == [False, False, True, True, True]
        assert store.get(other) is not None

    def test_the_csrf_token_is_per_session(self) -> None:
        store = SessionStore()
        _, one = store.open("local:ann", "pgt_x")
        _, two = store.open("local:ann", "pgt_x")
        assert one.csrf_matches(one.csrf) and not one.csrf_matches(two.csrf)
        assert not one.csrf_matches(None) and not one.csrf_matches("")


class TestNext:
    @pytest.mark.parametrize("target", [
        "//evil.example/console/", "https://evil.example/console/", "/console/\\evil", "/console//evil.example",
        "/v1/pauses", "/console/\x0a", "javascript:alert(1)", "", None,
    ])
    def test_anything_but_a_console_path_sends_to_the_board(self, target: str | None) -> None:
        assert local_next(target) == "/console/"

    def test_a_console_path_is_kept(self) -> None:
        assert local_next("/console/pauses/p/plan?x=1") == "/console/pauses/p/plan?x=1"


class TestEvents:
    def test_every_line_of_a_fragment_is_its_own_data_line(self) -> None:
        assert event("ledger", "<p>a</p>\n<p>b</p>\r\n<p>c</p>") == \
            "event: ledger\ndata: <p>a</p>\ndata: <p>b</p>\ndata: <p>c</p>\n\n"

    def test_text_cannot_end_an_event_early(self) -> None:
        # A blank line would end the event: fragments are split on every line break, none survives inside data.
        framed = event("x", "one\n\ntwo\revent: forged")
        assert "\n\n" not in framed[:-2] and "\r" not in framed
        lines = framed[:-2].split("\n")
        assert lines[0] == "event: x" and all(line.startswith("data: ") for line in lines[1:])


class TestPlanForm:
    def test_grant_lines_read_back_as_written(self) -> None:
        line = "telemetry telemetry_analysts keystrokes SELECT agent_id,id"
        grant = parse_grant(line)
        assert (grant.dataset, grant.role, grant.table, grant.privileges, grant.columns) == (
            "telemetry", "telemetry_analysts", "keystrokes", ["SELECT"], ["agent_id", "id"])
        assert grant_line(grant) == line

    def test_every_bad_line_is_named(self) -> None:
        form = Form([("grants", "telemetry public keystrokes SELECT\n# a comment\ntoo few words\n"
                                "telemetry r t FROB"), ("agents_mode", "all")])
        with pytest.raises(Refusal) as refused:
            plan_from(form)
        problems = refused.value.problems
        assert refused.value.code == "invalid_plan"
        assert any(p.startswith("grants line 1:") and "public" in p for p in problems), problems
        assert any(p.startswith("grants line 3:") for p in problems), problems
        assert any(p.startswith("grants line 4:") and "FROB" in p for p in problems), problems
        assert not any(p.startswith("grants line 2:") for p in problems)

    def test_listed_agents_need_ids(self) -> None:
        with pytest.raises(Refusal) as refused:
            plan_from(Form([("agents_mode", "listed"), ("agent_ids", "")]))
        assert any("agent_ids" in p for p in refused.value.problems)
        plan = plan_from(Form([("agents_mode", "listed"), ("agent_ids", "a-1, a-2\na-3"), ("conditions", "x\n\n y ")]))
        assert plan.agents.agent_ids == ["a-1", "a-2", "a-3"] and plan.conditions == ["x", "y"]

    def test_a_form_that_is_not_url_encoded_is_refused(self) -> None:
        with pytest.raises(Refusal) as refused:
            Form.parse(b"{}", "application/json")
        assert refused.value.status == 415
        with pytest.raises(Refusal):
            Form.parse("&".join(f"f{i}=1" for i in range(1000)).encode(), "application/x-www-form-urlencoded")

    def test_an_unknown_agents_mode_is_a_problem_not_an_error(self) -> None:
        with pytest.raises(Refusal) as refused:
            plan_from(Form([("agents_mode", "some")]))
        assert refused.value.status == 422 and refused.value.problems[0].startswith("agents:")


async def get_console(app: FastAPI) -> httpx.Response:
    """``GET /console/`` in process (the app's lifespan is not run: nothing here reaches Temporal)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.get("/console/")


def with_cookie(cookie: str) -> Request:
    return Request({"type": "http", "scheme": "http", "method": "POST", "path": "/codec/decode", "query_string": b"",
                    "server": ("127.0.0.1", 80), "headers": [(b"cookie", cookie.encode())]})


class TestMounting:
    async def test_the_api_alone_serves_no_console_and_its_gate_guards_the_consoles_paths(self) -> None:
        alone = api_app.create_app(Settings(), cast(Any, None), authenticator=CombinedAuthenticator(None, None))
        answer = await get_console(alone)
        assert answer.status_code == 401 and answer.json()["error"] == "unauthenticated"

    async def test_the_faces_app_serves_the_console_which_sends_a_stranger_to_sign_in(self) -> None:
        both = faces.create_app(Settings(), cast(Any, None), authenticator=CombinedAuthenticator(None, None))
        answer = await get_console(both)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/console/sign-in")
        assert isinstance(both.state.console, ConsoleState)

    def test_the_api_sees_a_console_session_only_as_its_token_and_can_end_it(self) -> None:
        console = ConsoleState()
        session_id, _ = console.sessions.open("local:ann", "pgt_ann")
        seen = ConsoleSessions(console)
        request = with_cookie(f"{SESSION_COOKIE}={session_id}")
        assert seen.serves("/console/pauses/x") and seen.serves("/static/console.css") and not seen.serves("/v1/pauses")
        assert seen.token(request) == "pgt_ann"
        assert seen.token(with_cookie(f"{SESSION_COOKIE}=guessed")) is None
        seen.end(request)
        assert seen.token(request) is None and len(console.sessions) == 0


class TestRefusalPages:
    @pytest.mark.parametrize(("error", "status", "code"), [
        (ActionRefused("stale_plan", "the plan changed"), 409, "stale_plan"),
        (ActionRefused("wrong_role", "not yours"), 403, "wrong_role"),
        (Overloaded("the pause is busy", retry_after=3), 503, "busy"),
        (PauseNotFound("no pause for program 'x'"), 404, "no_pause"),
        (EvidenceError("the store did not answer"), 503, "evidence_unavailable"),
        (RPCError("unavailable", RPCStatusCode.UNAVAILABLE, b""), 503, "temporal_unavailable"),
    ])
    def test_a_page_refuses_with_the_status_and_code_of_the_json_api(
        self, error: Exception, status: int, code: str
    ) -> None:
        refusal = refusal_of(error)
        assert refusal is not None and (refusal.status, refusal.code) == (status, code)

    def test_an_error_that_is_not_the_apis_is_left_to_propagate(self) -> None:
        assert refusal_of(KeyError("a bug")) is None
