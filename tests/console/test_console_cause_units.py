"""How the console reads the derived cause (issue 27): only for a view the API did not redact, only the
document the pause recorded (one that does not read as it fails closed, showing nothing of it), read
once per recorded reference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from pausegate.api.models import PauseView
from pausegate.console.origins import derived_cause
from pausegate.console.render import build_environment
from pausegate.errors import EvidenceError
from pausegate.evidence.interface import EvidenceStore
from pausegate.models.evidence import EvidenceRef
from pausegate.models.origins import Headline, OriginDocument, summarise
from pausegate.models.people import Actor, PauseRequest
from pausegate.models.state import PauseState
from pausegate.policy.transitions import new_pause
from tests.support.harness import example_runbook

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ACTOR = "<img src=x onerror=alert(1)>"


class Store:
    """Answers one recorded document (by its digest), counting reads; anything else is not the recorded one."""

    def __init__(self, ref: EvidenceRef, document: dict[str, Any]) -> None:
        self.ref, self.document, self.reads = ref, document, 0

    def read_json(self, key: str, expected_sha256: str | None = None, *, version_id: str | None = None) -> Any:
        self.reads += 1
        if key != self.ref.key or expected_sha256 != self.ref.sha256:
            raise EvidenceError(f"{key}: not the recorded document")
        return self.document


def paused(sha: str) -> tuple[PauseState, Store]:
    document = OriginDocument(
        window_start=AT - timedelta(days=90), window_end=AT, oldest_line=AT - timedelta(days=30), statements=3,
        unparsed=0, paths=[], headline=Headline(since=AT - timedelta(days=2), by=ACTOR, role="schema_migrations",
                                                through="telemetry.keystrokes: SELECT granted to all_employees",
                                                statement="GRANT SELECT ON telemetry.keystrokes TO all_employees",
                                                path="grant:telemetry.keystrokes:all_employees", until=AT,
                                                duration_seconds=2 * 86400))
    ref = EvidenceRef(uri=f"evidence://p/origins/{sha}", sha256=sha * 64)
    runbook = example_runbook("cause")
    request = PauseRequest(program="cause", reason="r", commander=Actor(id="local:carol", roles=["x"]),
                           runbook=runbook)
    state = new_pause("pause/cause", request, AT, "s")
    state.containment.origins = summarise(document, ref)
    return state, Store(ref, document.model_dump(mode="json"))


def store_of(store: Store) -> EvidenceStore:
    return store  # type: ignore[return-value]


class TestDerivedCause:
    async def test_a_reviewers_view_gets_the_headline_read_once_and_shown_as_text(self) -> None:
        state, store = paused("a")
        view = PauseView.of(state, reveal=True)
        cause = await derived_cause(store_of(store), view)
        assert cause is not None and not cause.unreadable and cause.headline is not None
        assert cause.headline.by == ACTOR and cause.item == "root-cause"
        again = await derived_cause(store_of(store), view)
        assert again == cause and store.reads == 1  # immutable under its digest: read once
        page = build_environment().get_template("_origins.html").render(view=view, seen=SimpleNamespace(cause=cause))
        assert "&lt;img src=x onerror=alert(1)&gt;" in page and ACTOR not in page
        assert "(as <span data-fact=\"origin-role\">schema_migrations</span>)" in page and "for 2 d 0 h" in page

    async def test_a_redacted_view_gets_nothing_and_the_store_is_not_read(self) -> None:
        state, store = paused("b")
        assert await derived_cause(store_of(store), PauseView.of(state, reveal=False)) is None
        assert store.reads == 0

    async def test_a_document_that_is_not_the_recorded_one_fails_closed(self) -> None:
        state, store = paused("c")
        store.ref = store.ref.model_copy(update={"sha256": "d" * 64})  # the store holds another document
        view = PauseView.of(state, reveal=True)
        cause = await derived_cause(store_of(store), view)
        assert cause is not None and cause.unreadable and cause.headline is None
        page = build_environment().get_template("_origins.html").render(view=view, seen=SimpleNamespace(cause=cause))
        assert 'data-fact="origin-unreadable"' in page and "schema_migrations" not in page
        await derived_cause(store_of(store), view)
        assert store.reads == 2  # a failure is not kept: the next page reads again
