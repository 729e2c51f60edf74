"""The console's sessions, anti-forgery and headers, over plain HTTP (no browser needed to see them)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest_asyncio

from pausegate.console.render import TEMPLATES
from pausegate.console.security import CONTENT_SECURITY_POLICY
from tests.api.support import ApiWorld, api_world
from tests.support.harness import Harness

FORM = "application/x-www-form-urlencoded"


@pytest_asyncio.fixture
async def api(harness: Harness, tmp_path: Path) -> AsyncIterator[ApiWorld]:
    async with api_world(harness, tmp_path / "api") as world:
        yield world


def form_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:2000]
    return found.group(1)


@asynccontextmanager
async def signed_in(api: ApiWorld, name: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client holding ``name``'s console session (signed in through the form, as a browser does)."""
    async with httpx.AsyncClient(base_url=api.url, headers={"Origin": api.url}, timeout=30) as client:
        page = await client.get("/console/sign-in")
        answer = await client.post("/console/sign-in", data={"csrf_token": form_token(page.text),
                                                             "token": api.tokens[name], "next": "/console/"})
        assert answer.status_code == 303, answer.text
        yield client


class TestSignIn:
    async def test_a_page_without_a_session_is_sent_to_sign_in(self, api: ApiWorld) -> None:
        async with httpx.AsyncClient(base_url=api.url) as client:
            answer = await client.get("/console/pauses/anything")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/sign-in?next=%2Fconsole%2Fpauses%2Fanything"

    async def test_the_token_is_exchanged_once_for_a_strict_http_only_expiring_cookie(self, api: ApiWorld) -> None:
        async with httpx.AsyncClient(base_url=api.url, headers={"Origin": api.url}) as client:
            page = await client.get("/console/sign-in")
            answer = await client.post("/console/sign-in", data={"csrf_token": form_token(page.text),
                                                                 "token": api.tokens["ann"], "next": "/console/"})
            assert answer.status_code == 303 and answer.headers["location"] == "/console/"
            cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("pausegate_session="))
            attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
            assert {"httponly", "max-age", "path"} <= attributes
            assert "samesite=strict" in cookie.lower()
            assert "secure" not in attributes  # served over plain HTTP here; over TLS the __Host- cookie is Secure
            board = await client.get("/console/")
        assert board.status_code == 200
        assert '<strong data-fact="whoami">local:ann</strong>' in board.text
        assert api.tokens["ann"] not in board.text

    async def test_a_token_that_signs_nobody_in_is_answered_with_the_form_again(self, api: ApiWorld) -> None:
        async with httpx.AsyncClient(base_url=api.url, headers={"Origin": api.url}) as client:
            page = await client.get("/console/sign-in")
            answer = await client.post("/console/sign-in", data={"csrf_token": form_token(page.text),
                                                                 "token": "pgt_not-a-token"})
            assert answer.status_code == 401
            assert "That token does not sign anyone in" in answer.text
            assert not [c for c in answer.headers.get_list("set-cookie") if c.startswith("pausegate_session=")]

    async def test_a_sign_in_form_posted_without_its_cookie_is_refused(self, api: ApiWorld) -> None:
        # Another site cannot sign a victim in as the attacker: it has no sign-in cookie to match.
        async with httpx.AsyncClient(base_url=api.url, headers={"Origin": api.url}) as client:
            answer = await client.post("/console/sign-in", data={"csrf_token": "guessed", "token": api.tokens["ann"]})
        assert answer.status_code == 403
        assert not [c for c in answer.headers.get_list("set-cookie") if c.startswith("pausegate_session=")]

    async def test_after_sign_in_the_console_never_redirects_off_site(self, api: ApiWorld) -> None:
        for target in ("//evil.example/console/", "https://evil.example/", "/console/\\\\evil.example",
                       "/v1/pauses"):
            async with httpx.AsyncClient(base_url=api.url, headers={"Origin": api.url}) as client:
                page = await client.get("/console/sign-in", params={"next": target})
                assert 'name="next" value="/console/"' in page.text, target
                answer = await client.post("/console/sign-in", data={
                    "csrf_token": form_token(page.text), "token": api.tokens["ann"], "next": target})
                assert answer.headers["location"] == "/console/", target

    async def test_signing_out_ends_the_session_on_the_server(self, api: ApiWorld) -> None:
        async with signed_in(api, "ann") as client:
            board = await client.get("/console/")
            stolen = client.cookies.get("pausegate_session")
            out = await client.post("/console/sign-out", data={"csrf_token": form_token(board.text)})
            assert out.status_code == 303 and out.headers["location"] == "/console/sign-in?why=signed-out"
        async with httpx.AsyncClient(base_url=api.url, cookies={"pausegate_session": stolen or ""}) as replay:
            again = await replay.get("/console/")
        assert again.status_code == 303 and again.headers["location"].startswith("/console/sign-in")


class TestForgery:
    async def test_a_post_without_the_sessions_csrf_token_is_refused_and_nothing_starts(self, api: ApiWorld) -> None:
        async with signed_in(api, "carol") as client:
            answer = await client.post("/console/pauses", data={"csrf_token": "not-it", "program": api.program,
                                                                "reason": "forged", "severity": "high"})
            assert answer.status_code == 403
            assert "anti-forgery token" in answer.text
        listed = await api.client("carol").get("/v1/pauses")
        assert listed.json() == []

    async def test_a_post_from_another_origin_is_refused_even_with_session_and_token(self, api: ApiWorld) -> None:
        async with signed_in(api, "carol") as client:
            token = form_token((await client.get("/console/")).text)
            for headers in ({"Origin": "http://evil.example"}, {"Origin": api.url, "Sec-Fetch-Site": "cross-site"}):
                answer = await client.post("/console/pauses", headers=headers, data={
                    "csrf_token": token, "program": api.program, "reason": "forged", "severity": "high"})
                assert answer.status_code == 403, headers
                assert "Refused: <span data-fact=\"refusal-code\">cross_site</span>" in answer.text
            # A request naming no origin at all is refused too: browsers always name one on a form post.
            bare = httpx.AsyncClient(base_url=api.url, cookies=client.cookies)
            async with bare:
                answer = await bare.post("/console/pauses", data={"csrf_token": token, "program": api.program,
                                                                  "reason": "forged"})
            assert answer.status_code == 403
        listed = await api.client("carol").get("/v1/pauses")
        assert listed.json() == []

    async def test_the_console_session_does_not_open_the_json_api(self, api: ApiWorld) -> None:
        # The JSON API takes bearer tokens only, so a cookie riding along a cross-site request opens nothing there.
        async with signed_in(api, "carol") as client:
            answer = await client.post("/v1/pauses", json={"program": api.program, "reason": "cookie only"})
        assert answer.status_code == 401


class TestHeaders:
    async def test_every_console_response_carries_the_strict_policy(self, api: ApiWorld) -> None:
        async with signed_in(api, "ann") as client:
            for path in ("/console/", "/console/sign-in", "/console/pause", "/static/console.css",
                         "/static/htmx.min.js", f"/console/pauses/{api.program}"):
                answer = await client.get(path)
                assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
                assert answer.headers["x-content-type-options"] == "nosniff", path
                assert answer.headers["x-frame-options"] == "DENY", path
                if not path.startswith("/static/"):
                    assert answer.headers["cache-control"] == "no-store", path
        assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "default-src 'self'" in CONTENT_SECURITY_POLICY

    async def test_pages_hold_no_inline_script_or_style(self, api: ApiWorld) -> None:
        async with signed_in(api, "carol") as client:
            pages = [await client.get(p) for p in ("/console/", "/console/pause", "/console/sign-in")]
        for page in pages:
            assert re.search(r"<script(?![^>]*\bsrc=)", page.text) is None
            assert "<style" not in page.text and " style=" not in page.text
            assert re.search(r"\son[a-z]+=", page.text) is None


class TestTemplates:
    def test_no_template_turns_escaping_off(self) -> None:
        for template in TEMPLATES.glob("*.html"):
            text = template.read_text()
            for forbidden in ("|safe", "| safe", "autoescape false", "Markup(", "|tojson"):
                assert forbidden not in text, f"{template.name} uses {forbidden}"


class TestLiveStream:
    async def test_a_stream_sends_only_what_the_page_does_not_show_yet(self, api: ApiWorld) -> None:
        console = api.app.state.console
        console.heartbeat_seconds, console.stream_seconds = 0.2, 1.5  # short streams that end by themselves
        answer = await api.client("carol").post("/v1/pauses", json={"program": api.program, "reason": "leak"})
        assert answer.status_code == 201
        await api.wait_for_state("UNDER_REVIEW")

        async def events(client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None) -> str:
            async with client.stream("GET", url, headers={"Accept": "text/event-stream", **(headers or {})}) as r:
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
                return "".join([chunk async for chunk in r.aiter_text()])

        async with signed_in(api, "ann") as client:
            page = await client.get(f"/console/pauses/{api.program}")
            connect = re.search(r'sse-connect="([^"]+)"', page.text)
            assert connect, page.text[:500]
            url = connect.group(1).replace("&amp;", "&")
            version = re.search(r"[?&]v=([0-9a-f]+)", url)
            assert version
            # The page is current: the stream stays silent (comments only) until it ends.
            current = await events(client, url)
            assert "event:" not in current and ": alive" in current, current[:500]
            # A page that has not seen this version gets every live fragment, the last one carrying the version.
            stale = await events(client, url.replace(version.group(0), version.group(0)[:3] + "0" * 32))
            assert re.findall(r"^event: (\w+)$", stale, re.M) == ["summary", "ledger", "timeline"], stale[:300]
            assert f"id: {version.group(1)}\n" in stale
            assert "data: " in stale and "UNDER_REVIEW" in stale
            # A reconnecting browser names the last version it saw, which wins over the page's.
            again = await events(client, url.replace(version.group(0), version.group(0)[:3] + "0" * 32),
                                 {"Last-Event-ID": version.group(1)})
            assert "event:" not in again
        # Signed out, a stream is answered 204: a browser's EventSource does not reconnect after that.
        async with httpx.AsyncClient(base_url=api.url) as anonymous:
            gone = await anonymous.get(url, headers={"Accept": "text/event-stream"})
        assert gone.status_code == 204
