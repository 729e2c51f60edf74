"""Units of the console's OIDC sign-in and timeline rows; the OIDC start route and the archived timeline
over plain HTTP."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from pausegate.config import OidcSettings
from pausegate.console import bridge
from pausegate.console.oidc import PENDING_COOKIE, PENDING_PATH, PendingSignIns, authorization_url
from pausegate.console.render import TimelineRows, build_environment
from pausegate.evidence.layout import timeline_key
from pausegate.models.people import PauseRequest
from pausegate.models.state import PauseState, TimelineEntry
from pausegate.policy.transitions import new_pause
from tests.api.support import api_world
from tests.console.test_console_http import signed_in
from tests.support.harness import COMMANDER, Harness

IDP = "https://idp.example.test"


def settings(**changes: object) -> OidcSettings:
    base = OidcSettings(issuer=IDP, audience="pausegate-api", jwks_url=f"{IDP}/jwks", client_id="pausegate-console",
                        authorization_endpoint=f"{IDP}/authorize", token_endpoint=f"{IDP}/token")
    return base.model_copy(update=changes)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class TestPendingSignIns:
    def test_an_attempt_answers_once(self) -> None:
        store = PendingSignIns()
        pending_id, pending = store.open("/console/")
        assert store.take(pending_id) == pending
        # A replayed answer (same cookie) finds nothing: the first take removed it.
        assert store.take(pending_id) is None
        assert len(store) == 0

    def test_an_attempt_expires(self) -> None:
        clock = Clock()
        store = PendingSignIns(ttl_seconds=600, clock=clock)
        pending_id, _ = store.open("/console/")
        clock.now += 601
        assert store.take(pending_id) is None

    def test_unknown_ids_and_overlong_ids_find_nothing(self) -> None:
        store = PendingSignIns()
        store.open("/console/")
        assert store.take(None) is None and store.take("nope") is None and store.take("x" * 500) is None
        assert len(store) == 1  # a wrong id does not spend someone else's attempt

    def test_the_store_is_bounded_oldest_first(self) -> None:
        # Starting a sign-in needs no credential: a flood of starts cannot grow memory without bound.
        store = PendingSignIns(limit=3)
        ids = [store.open("/console/")[0] for _ in range(5)]
        assert len(store) == 3
        assert store.take(ids[0]) is None and store.take(ids[-1]) is not None

    def test_a_flood_of_starts_from_one_client_evicts_only_its_own_attempts(self) -> None:
        store = PendingSignIns(limit=100, per_client=5)
        waiting = store.open("/console/", client="192.0.2.7")[0]
        flood = [store.open("/console/", client="198.51.100.1")[0] for _ in range(1_000)]
        assert len(store) == 6
        assert store.take(flood[0]) is None and store.take(flood[-1]) is not None
        assert store.take(waiting) is not None  # someone else's pending sign-in survived the flood
        # past the store's own bound, the client holding the most loses first
        crowd = [store.open("/console/", client=f"203.0.113.{n}")[0] for n in range(96)]
        assert len(store) == 100
        crowd.append(store.open("/console/", client="192.0.2.8")[0])
        assert len(store) == 100 and all(store.take(i) is not None for i in crowd)

    def test_state_and_nonce_compare_exactly(self) -> None:
        _, pending = PendingSignIns().open("/console/")
        assert pending.state_matches(pending.state) and not pending.state_matches(pending.state[::-1])
        assert not pending.state_matches(None)
        assert pending.nonce_matches(pending.nonce) and not pending.nonce_matches(pending.state)
        assert not pending.nonce_matches(None)


def test_the_authorization_url_carries_state_nonce_and_the_s256_challenge_of_the_kept_verifier() -> None:
    _, pending = PendingSignIns().open("/console/")
    url = urlsplit(authorization_url(settings(), "http://127.0.0.1:1/cb", pending))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    expected = base64.urlsafe_b64encode(hashlib.sha256(pending.code_verifier.encode()).digest()).rstrip(b"=").decode()
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{IDP}/authorize"
    assert query["code_challenge"] == expected and query["code_challenge_method"] == "S256"
    assert query["state"] == pending.state and query["nonce"] == pending.nonce
    assert query["response_type"] == "code" and "openid" in query["scope"].split()
    # The verifier itself never leaves the server.
    assert pending.code_verifier not in url.query


class TestTimelineRows:
    def entry(self, detail: str) -> TimelineEntry:
        return TimelineEntry(at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), actor="local:ann", action="note",
                             detail=detail)

    def test_rows_are_escaped_and_kept_by_content(self) -> None:
        rows = TimelineRows(build_environment())
        hostile = rows(self.entry("<script>alert(1)</script>"))
        assert "<script>" not in hostile and "&lt;script&gt;" in hostile
        # A redacted view (detail emptied) is another row, not the cached unredacted one.
        redacted = rows(self.entry(""))
        assert "alert" not in redacted and len(rows) == 2
        assert rows(self.entry("<script>alert(1)</script>")) is hostile  # kept: rendered once

    def test_the_cache_is_bounded(self) -> None:
        rows = TimelineRows(build_environment(), limit=2)
        for n in range(5):
            rows(self.entry(f"n{n}"))
        assert len(rows) == 2


class TestStartOverHttp:
    async def test_start_sets_a_lax_pre_session_cookie_on_the_oidc_path_and_redirects_to_the_provider(
        self, harness: Harness, tmp_path: Path
    ) -> None:
        async with api_world(harness, tmp_path / "api", oidc_settings=settings()) as api, \
                httpx.AsyncClient(base_url=api.url) as client:
            page = await client.get("/console/sign-in")
            assert "/console/sign-in/oidc?next=" in page.text  # the sign-in page offers it when configured
            answer = await client.get(PENDING_PATH, params={"next": "/console/pauses/x"})
            assert answer.status_code == 303 and answer.headers["location"].startswith(f"{IDP}/authorize?")
            cookie = answer.headers["set-cookie"]
            assert cookie.startswith(f"{PENDING_COOKIE}=")
            attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
            assert {"httponly", "samesite=lax", f"path={PENDING_PATH}", "max-age=600"} <= attributes
            assert len(api.app.state.console.pending_sign_ins) == 1

    async def test_a_host_the_console_is_not_served_as_gets_no_redirect_and_no_origin(
        self, harness: Harness, tmp_path: Path
    ) -> None:
        async with api_world(harness, tmp_path / "api", oidc_settings=settings()) as api, \
                httpx.AsyncClient(base_url=api.url) as client:
            forged = {"Host": "pausegate.attacker.example"}
            answer = await client.get(PENDING_PATH, headers=forged)
            assert answer.status_code == 400 and "attacker" not in answer.headers.get("location", "")
            assert "not served as" in answer.text and len(api.app.state.console.pending_sign_ins) == 0
            # nor is the forged name taken as the console's origin for a change
            posted = await client.post("/console/sign-in", data={"token": "x"},
                                       headers={**forged, "Origin": "http://pausegate.attacker.example"})
            assert posted.status_code == 403 and "not served as" in posted.text
            # the name the console is served as still works
            answer = await client.get(PENDING_PATH)
            assert answer.status_code == 303
            redirect = parse_qs(urlsplit(answer.headers["location"]).query)["redirect_uri"][0]
            assert redirect == f"{api.url}/console/sign-in/oidc/callback"

    async def test_without_a_client_id_there_is_no_button_and_no_redirect(self, harness: Harness,
                                                                           tmp_path: Path) -> None:
        async with api_world(harness, tmp_path / "api") as api, httpx.AsyncClient(base_url=api.url) as client:
            page = await client.get("/console/sign-in")
            assert "/console/sign-in/oidc" not in page.text
            answer = await client.get(PENDING_PATH)
            assert answer.status_code == 404 and "not configured" in answer.text
            assert "set-cookie" not in answer.headers or PENDING_COOKIE not in answer.headers["set-cookie"]


class TestArchivedTimeline:
    """The paged view of the timeline entries the workflow moved to evidence (``timeline_archived``)."""

    async def test_archived_documents_are_paged_newest_first_checked_and_redacted(
        self, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async with api_world(harness, tmp_path / "api") as api:
            start = datetime(2026, 1, 2, tzinfo=UTC)
            status = new_pause("p", PauseRequest(program=api.program, reason="r", commander=COMMANDER,
                                                 runbook=harness.runbook), start, "s")
            store = api.app.state.api.store
            for sequence in range(2):
                older = [TimelineEntry(at=start + timedelta(minutes=sequence * 10 + i), actor="local:ann",
                                       action=f"doc{sequence}.entry{i}") for i in range(3)]
                status.timeline_archived.append(store.put_json(timeline_key(status.evidence_key, sequence),
                                                               [e.model_dump(mode="json") for e in older]))

            async def read_status(client: object, program: str) -> PauseState:
                return status

            # No workflow holds hundreds of entries here: the status is handed to the console as read.
            monkeypatch.setattr(bridge, "read_status", read_status)
            url = f"/console/pauses/{api.program}/timeline/archived"
            async with signed_in(api, "cleo") as cleo:
                first = await cleo.get(url)
                assert first.status_code == 200, first.text
                assert "Page 1 of 2" in first.text and "doc1.entry2" in first.text and "doc0." not in first.text
                assert first.text.index("doc1.entry2") < first.text.index("doc1.entry0")  # newest first
                last = await cleo.get(url, params={"page": 9})  # past the end: the oldest page
                assert "Page 2 of 2" in last.text and "doc0.entry0" in last.text
                # A document altered after it was archived is refused, not shown.
                path = store.document_path(status.timeline_archived[0].key)
                path.write_bytes(path.read_bytes().replace(b"doc0.entry0", b"doc0.forged"))
                altered = await cleo.get(url, params={"page": 2})
                assert altered.status_code == 503 and "doc0.forged" not in altered.text
            async with signed_in(api, "ada") as ada:
                # Without a review role the view is redacted: it lists no archived documents.
                hidden = await ada.get(url)
                assert hidden.status_code == 200 and "doc1." not in hidden.text
                assert "No timeline entries have been archived that you may read" in hidden.text
