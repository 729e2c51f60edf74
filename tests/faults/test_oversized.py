"""Oversized input is refused with a clear message by the models, before it can reach workflow history.

Every update input is a pydantic model: building it is where a request is refused. A refusal must name
the field and the limit. Temporal warns at 256 KB per payload and refuses 2 MB, so the largest input the
models accept must stay under that, or it fails later, at the server, with no useful message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from pausegate.models.access import GrantSpec
from pausegate.models.checklist import EvidenceAttachment
from pausegate.models.limits import MAX_NOTE
from pausegate.models.plan import AgentSelection, ResumePlan
from pausegate.models.updates import (
    ApproveInput,
    CompleteItemInput,
    ProposePlanInput,
    RefusalInput,
    RejectPlanInput,
    WaiveAgentsInput,
)
from tests.support.fault_report import record_result
from tests.support.harness import ANALYST, CISO, COMMANDER

TEMPORAL_BLOB_LIMIT = 2 * 1024 * 1024
MB = "x" * 1_000_000


def evidence(n: int) -> list[EvidenceAttachment]:
    return [EvidenceAttachment(name=f"e{i}", uri=f"https://docs.example.com/{i}") for i in range(n)]


# (case, build with size n, largest accepted n, field the refusal names)
BOUNDED: list[tuple[str, Callable[[int], Any], int, str]] = [
    ("checklist note", lambda n: CompleteItemInput(actor=ANALYST, item_id="a", note="x" * n), MAX_NOTE, "note"),
    ("evidence attachments", lambda n: CompleteItemInput(actor=ANALYST, item_id="a", evidence=evidence(n)), 50,
     "evidence"),
    ("evidence uri", lambda n: EvidenceAttachment(name="e", uri="u" * n), 1000, "uri"),
    ("evidence name", lambda n: EvidenceAttachment(name="e" * n, uri="u"), 100, "name"),
    ("evidence note", lambda n: EvidenceAttachment(name="e", uri="u", note="x" * n), MAX_NOTE, "note"),
    ("rejection reason", lambda n: RejectPlanInput(actor=CISO, reason="x" * n), MAX_NOTE, "reason"),
    ("approval comment", lambda n: ApproveInput(actor=CISO, role="ciso", digest="ab" * 32, comment="x" * n),
     MAX_NOTE, "comment"),
    ("waived agents", lambda n: WaiveAgentsInput(actor=COMMANDER, agent_ids=[f"a{i}" for i in range(n)],
                                                 reason="r"), 5000, "agent_ids"),
    ("plan conditions", lambda n: ResumePlan(conditions=["c"] * n), 50, "conditions"),
    ("plan summary", lambda n: ResumePlan(summary="x" * n), MAX_NOTE, "summary"),
    ("plan agents", lambda n: AgentSelection(mode="listed", agent_ids=[f"a{i}" for i in range(n)]), 5000,
     "agent_ids"),
    ("refusal reason", lambda n: RefusalInput(actor="a", action="x", reason="x" * n), MAX_NOTE, "reason"),
]


@pytest.mark.parametrize(("case", "build", "limit", "field"), BOUNDED, ids=[b[0] for b in BOUNDED])
def test_input_at_its_limit_is_accepted_and_one_past_it_refused_by_name(
    case: str, build: Callable[[int], Any], limit: int, field: str
) -> None:
    build(limit)
    with pytest.raises(ValidationError) as refused:
        build(limit + 1)
    message = str(refused.value)
    assert field in message and str(limit) in message, message
    record_result("oversized input", case, injected=1, outcome=f"refused by the model: '{field}' over {limit}")


# Fields that carry free text or lists with no bound of their own.
UNBOUNDED: list[tuple[str, Callable[[], Any]]] = [
    ("plan condition text", lambda: ResumePlan(conditions=[MB])),
    ("plan agent id", lambda: AgentSelection(mode="listed", agent_ids=[MB])),
    ("grant dataset name", lambda: GrantSpec(dataset=MB, role="r", table="t", privileges=["SELECT"])),
    ("grant columns", lambda: GrantSpec(dataset="d", role="r", table="t", privileges=["SELECT"],
                                        columns=[f"c{i}" for i in range(200_000)])),
    ("waived agent id", lambda: WaiveAgentsInput(actor=COMMANDER, agent_ids=[MB], reason="r")),
]


@pytest.mark.parametrize(("case", "build"), UNBOUNDED, ids=[u[0] for u in UNBOUNDED])
def test_a_megabyte_in_any_free_text_or_list_field_is_refused(case: str, build: Callable[[], Any]) -> None:
    with pytest.raises(ValidationError):
        build()
    record_result("oversized input", case, injected=1, outcome="refused by the model")


def _max_length(model: type[Any], name: str) -> int:
    return next(m.max_length for m in model.model_fields[name].metadata if getattr(m, "max_length", None))


def test_the_largest_plan_the_models_accept_fits_in_one_temporal_payload() -> None:
    """Fill every bounded field of a plan to its limit: either the models refuse it with a message naming
    the size, or what they accept fits in one Temporal payload."""
    grants = [GrantSpec(dataset="telemetry", role="r" * 63, table="t" * 63,
                        privileges=["SELECT", "INSERT", "UPDATE", "DELETE"])
              for _ in range(_max_length(ResumePlan, "grants"))]
    try:
        largest = ProposePlanInput(actor=COMMANDER, plan=ResumePlan(grants=grants, summary="x" * MAX_NOTE))
    except ValidationError as refused:
        assert "bytes" in str(refused), str(refused)
        record_result("oversized input", "plan of the most grants allowed", injected=1,
                      outcome="refused by the model: the plan's size in bytes is over the limit")
        return
    size = len(largest.model_dump_json())
    assert size < TEMPORAL_BLOB_LIMIT, f"a valid plan of {size} bytes exceeds Temporal's {TEMPORAL_BLOB_LIMIT}"
    record_result("oversized input", "largest valid plan", injected=1, outcome=f"{size} bytes, under the 2 MB limit")
