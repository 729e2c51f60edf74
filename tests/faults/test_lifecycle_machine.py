"""Random sequences of actions by random actors against a real pause, checked against a model of the rules.

The model (pure, below) predicts whether each action is accepted or refused and what the pause looks
like afterwards. Whatever the sequence: no resume without the runbook's quorum on the current plan and
verified containment; no approval from the commander or twice from one person or role; the timeline
records every accepted and every refused action.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import Phase as HypothesisPhase
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from temporalio.service import RPCError

from pausegate.errors import ActionRefused
from pausegate.models.checklist import EvidenceAttachment
from pausegate.models.people import Actor
from pausegate.models.phase import Phase
from pausegate.models.plan import ResumePlan
from pausegate.models.state import PauseState
from pausegate.models.updates import (
    ApproveInput,
    CompleteItemInput,
    ProposePlanInput,
    RejectPlanInput,
    WaiveAgentsInput,
)
from pausegate.temporal.pauses import pause_handle
from tests.support.fault_report import record_result
from tests.support.harness import Harness, HarnessFactory
from tests.support.polling import polled
from tests.workflows.test_lifecycle import NARROWED_PLAN

T = TypeVar("T")

COMMANDER = Actor(id="carol", roles=["incident-commander", "ciso"])  # a commander who is also an approver
ACTORS = [
    COMMANDER,
    Actor(id="ann", roles=["security-analyst"]),
    Actor(id="sam", roles=["security-lead"]),
    Actor(id="dave", roles=["data-engineer"]),
    Actor(id="pia", roles=["privacy-officer"]),
    Actor(id="lee", roles=["legal-counsel"]),
    Actor(id="cleo", roles=["ciso"]),
    Actor(id="cora", roles=["ciso"]),  # a second CISO: one approval per role
    Actor(id="pat", roles=["cpo"]),
    Actor(id="tom", roles=["cto", "security-lead"]),
    Actor(id="mallory", roles=[]),
]
APPROVER_ROLES = ["ciso", "cpo", "cto"]
PROPOSER_ROLES = ["incident-commander", "security-lead"]
PLANS = [NARROWED_PLAN, NARROWED_PLAN.model_copy(update={"summary": "the same grants, reworded"}),
         ResumePlan(summary="resume nothing but the agents")]
REVIEW_STATES = {Phase.CONTAINING, Phase.UNDER_REVIEW, Phase.AWAITING_APPROVAL}
EXAMPLES = 10
"""Each example is a fresh pause; the test checks that these many still run every rule and see every kind of
action accepted and refused."""


@dataclass
class Model:
    """What the rules say the pause is."""

    items: dict[str, tuple[list[str], list[str], list[str]]]  # id -> (roles, depends_on, evidence)
    state: Phase = Phase.UNDER_REVIEW
    done: set[str] = field(default_factory=set)
    plan: int | None = None
    proposer: str | None = None  # who proposed the current plan: they may not approve it
    plan_version: int = 0  # any change of plan or checklist makes earlier digests stale
    approvals: list[tuple[str, str]] = field(default_factory=list)
    accepted: int = 0
    refused: int = 0

    def _settle(self) -> None:
        ready = self.plan is not None and self.done == set(self.items)
        if self.state in (Phase.UNDER_REVIEW, Phase.AWAITING_APPROVAL):
            self.state = Phase.AWAITING_APPROVAL if ready else Phase.UNDER_REVIEW

    def complete(self, item: str, actor: Actor, with_evidence: bool) -> bool:
        roles, deps, _ = self.items[item]
        ok = self.state in REVIEW_STATES and actor.has_any(roles) and set(deps) <= self.done and with_evidence
        if ok:
            self.done.add(item)
            self.approvals = []
            self.plan_version += 1
            self._settle()
        return ok

    def propose(self, actor: Actor, plan: int) -> bool:
        ok = self.state in REVIEW_STATES and actor.has_any(PROPOSER_ROLES)
        if ok:
            self.plan = plan
            self.proposer = actor.id
            self.approvals = []
            self.plan_version += 1
            self._settle()
        return ok

    def reject(self, actor: Actor) -> bool:
        ok = self.state in REVIEW_STATES and self.plan is not None and actor.has_any(APPROVER_ROLES + PROPOSER_ROLES)
        if ok:
            self.plan = None
            self.approvals = []
            self.plan_version += 1
            self._settle()
        return ok

    def approve(self, actor: Actor, role: str, current: bool) -> bool:
        ok = (
            self.state == Phase.AWAITING_APPROVAL
            and role in actor.roles and role in APPROVER_ROLES
            and actor.id != COMMANDER.id
            and actor.id != self.proposer
            and all(a != actor.id for a, _ in self.approvals)
            and all(r != role for _, r in self.approvals)
            and current
        )
        if ok:
            self.approvals.append((actor.id, role))
            if len(self.approvals) >= 2:
                self.state = Phase.RESUMED
        return ok


RULES: set[str] = set()
"""The machine's rules, by name (each is ``counted``)."""


def counted(rule_method: Callable[..., None]) -> Callable[..., None]:
    """Counts each run of a rule that hypothesis chose (not a call from another rule): the test shows
    that the examples it runs exercised every rule."""
    RULES.add(rule_method.__name__)

    @functools.wraps(rule_method)
    def chosen(self: PauseMachine, *args: Any, **kwargs: Any) -> None:
        if self.in_rule:
            return rule_method(self, *args, **kwargs)
        self.in_rule = True
        self.ran[rule_method.__name__] += 1
        try:
            return rule_method(self, *args, **kwargs)
        finally:
            self.in_rule = False
    return chosen


class PauseMachine(RuleBasedStateMachine):
    harness: Harness
    loop: asyncio.AbstractEventLoop
    stats: dict[str, int]
    ran: Counter[str]
    """Runs of each rule, by name."""
    outcomes: Counter[tuple[str, bool]]
    """(action, accepted) pairs seen."""

    def __init__(self) -> None:
        super().__init__()
        self.model: Model | None = None
        self.handle: Any = None
        self.in_rule = False

    def run(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)  # type: ignore[arg-type]

    def status(self) -> PauseState:
        return self.run(self.harness.status())

    def act(self, action: Any, predicted: bool) -> None:
        assert self.model is not None
        try:
            self.run(self.harness.act(action))
            accepted = True
        except ActionRefused:
            accepted = False
        self.stats["accepted" if accepted else "refused"] += 1
        name = type(action).__name__
        self.outcomes[name, accepted] += 1
        assert accepted == predicted, f"{name} by {action.actor.id}: model says " \
            f"{'accept' if predicted else 'refuse'}, the pause {'accepted' if accepted else 'refused'}"
        if accepted:
            self.model.accepted += 1
        else:
            self.model.refused += 1

    @initialize()
    def start(self) -> None:
        h = self.harness
        with contextlib.suppress(RPCError):
            # The previous example's pause, if it is still open.
            self.run(pause_handle(h.client, h.program).terminate("next example"))
        self.handle, started = self.run(h.pause(commander=COMMANDER))
        assert started
        self.run(h.wait_for_state(Phase.UNDER_REVIEW, timeout=60))
        items = {i.id: (i.roles, i.depends_on, i.evidence) for i in h.runbook.checklist}
        self.model = Model(items=items)
        self.stats["pauses"] += 1

    @precondition(lambda self: self.model is not None and self.model.state != Phase.RESUMED)
    @rule(actor=st.sampled_from(ACTORS))
    @counted
    def pull_the_kill_switch_again(self, actor: Actor) -> None:
        _, started = self.run(self.harness.pause(commander=actor, reason="pulled again"))
        assert not started, "a second pull started a second pause"

    @precondition(lambda self: self.model is not None and self.model.state != Phase.RESUMED)
    @rule(item=st.sampled_from(["access-review", "root-cause", "narrowed-access", "data-minimisation",
                                "employee-notice", "legal-privacy-review"]),
          actor=st.sampled_from(ACTORS), with_evidence=st.booleans())
    @counted
    def complete(self, item: str, actor: Actor, with_evidence: bool) -> None:
        assert self.model is not None
        required = self.model.items[item][2]
        evidence = [EvidenceAttachment(name=e, uri=f"https://docs.example.com/{e}") for e in required] \
            if with_evidence else []
        predicted = self.model.complete(item, actor, with_evidence)
        self.act(CompleteItemInput(actor=actor, item_id=item, evidence=evidence), predicted)

    @precondition(lambda self: self.model is not None and self.model.state != Phase.RESUMED)
    @rule(pick=st.integers(0, 10), count=st.integers(1, 3))
    @counted
    def complete_the_next_items_properly(self, pick: int, count: int) -> None:
        """Reviewers mostly do their job: without this, random sequences rarely reach sign-off."""
        assert self.model is not None
        model = self.model
        for _ in range(count):
            ready = [i for i, (_, deps, _) in model.items.items() if i not in model.done and set(deps) <= model.done]
            if not ready:
                return
            item = ready[pick % len(ready)]
            holders = [a for a in ACTORS if a.has_any(model.items[item][0])]
            self.complete(item, holders[pick % len(holders)], True)

    @precondition(lambda self: self.model is not None and self.model.state != Phase.RESUMED)
    @rule(actor=st.sampled_from([a for a in ACTORS if a.has_any(PROPOSER_ROLES)]), plan=st.integers(0, 1))
    @counted
    def a_proposer_proposes(self, actor: Actor, plan: int) -> None:
        self.propose(actor, plan)

    @precondition(lambda self: self.model is not None and self.model.state != Phase.RESUMED)
    @rule(actor=st.sampled_from([a for a in ACTORS if a.has_any(APPROVER_ROLES)]))
    @counted
    def an_approver_approves_what_is_shown(self, actor: Actor) -> None:
        self.approve(actor, next(r for r in actor.roles if r in APPROVER_ROLES), True)

    @precondition(lambda self: self.model is not None and self.model.state == Phase.AWAITING_APPROVAL)
    @rule(pick=st.integers(0, 10))
    @counted
    def the_quorum_approves(self, pick: int) -> None:
        """Leaders mostly do their job too: without this, whether a random sequence ever reaches a resume
        depends on the draw."""
        assert self.model is not None
        model = self.model
        while model.state == Phase.AWAITING_APPROVAL:
            ids = {a for a, _ in model.approvals} | {COMMANDER.id, model.proposer}
            roles = {r for _, r in model.approvals}
            allowed = [(a, r) for a in ACTORS if a.id not in ids for r in a.roles
                       if r in APPROVER_ROLES and r not in roles]
            if not allowed:
                return
            actor, role = allowed[pick % len(allowed)]
            self.approve(actor, role, True)

    @precondition(lambda self: self.model is not None and self.model.state != Phase.RESUMED)
    @rule(actor=st.sampled_from(ACTORS), plan=st.integers(0, len(PLANS) - 1))
    @counted
    def propose(self, actor: Actor, plan: int) -> None:
        assert self.model is not None
        predicted = self.model.propose(actor, plan)
        self.act(ProposePlanInput(actor=actor, plan=PLANS[plan]), predicted)

    @precondition(lambda self: self.model is not None and self.model.state != Phase.RESUMED)
    @rule(actor=st.sampled_from(ACTORS))
    @counted
    def reject(self, actor: Actor) -> None:
        assert self.model is not None
        predicted = self.model.reject(actor)
        self.act(RejectPlanInput(actor=actor, reason="not narrow enough"), predicted)

    @precondition(lambda self: self.model is not None and self.model.state != Phase.RESUMED)
    @rule(actor=st.sampled_from(ACTORS))
    @counted
    def waive(self, actor: Actor) -> None:
        # Every agent is confirmed: there is nothing to waive, whoever asks.
        self.act(WaiveAgentsInput(actor=actor, all_unconfirmed=True, reason="unreachable"), False)

    @precondition(lambda self: self.model is not None and self.model.state != Phase.RESUMED)
    @rule(actor=st.sampled_from(ACTORS), role=st.sampled_from([*APPROVER_ROLES, "incident-commander"]),
          current=st.booleans())
    @counted
    def approve(self, actor: Actor, role: str, current: bool) -> None:
        assert self.model is not None
        digest = self.status().approval_digest
        if not current or digest is None:
            current = False
            digest = "0" * 64
        predicted = self.model.approve(actor, role, current)
        self.act(ApproveInput(actor=actor, role=role, digest=digest), predicted)
        if self.model.state == Phase.RESUMED:
            final = self.run(self.handle.result())
            assert final.phase == Phase.RESUMED
            self.stats["resumed"] += 1

    @rule()
    @counted
    def someone_reads_the_pause(self) -> None:
        """Always possible, also once the pause is over."""
        self.status()

    @invariant()
    def the_pause_is_what_the_rules_say(self) -> None:
        if self.model is None:
            return
        status = self.status()
        assert status.phase == self.model.state
        if status.phase == Phase.AWAITING_APPROVAL:
            self.stats["steps_awaiting_approval"] += 1
        assert [(a.actor_id, a.role) for a in status.approvals] == self.model.approvals
        assert {i.id for i in status.checklist if i.done} == self.model.done
        # Never the commander, never one person or role twice.
        ids = [a.actor_id for a in status.approvals]
        assert COMMANDER.id not in ids and len(ids) == len(set(ids))
        assert len({a.role for a in status.approvals}) == len(status.approvals)
        if status.phase in (Phase.RESUMING, Phase.RESUMED):
            assert status.containment.contained_at is not None and status.containment.access_revoked
            assert all(i.done for i in status.checklist) and status.plan is not None
            assert len([a for a in status.approvals if a.digest == status.approval_digest]) >= status.quorum
        # Every accepted and refused action is in the timeline (refusals arrive by signal: poll).
        expected = (self.model.accepted, self.model.refused)
        if recorded(status) != expected:
            self.run(polled(self.harness.status, until=lambda status: recorded(status) == expected, every=0.05,
                            what=f"the timeline's (accepted, refused) at {expected}"))


def recorded(status: PauseState) -> tuple[int, int]:
    """(accepted, refused) actions in the pause's timeline."""
    accepted = sum(1 for e in status.timeline if e.accepted and e.action in (
        "checklist.completed", "checklist.amended", "plan.proposed", "plan.rejected", "plan.approved"))
    refused = sum(e.count for e in status.timeline if not e.accepted and e.action.startswith("refused."))
    return accepted, refused


@pytest.mark.slow
async def test_random_actions_by_random_actors_follow_the_rules(make_harness: HarnessFactory) -> None:
    async with make_harness(agents=20) as h:
        PauseMachine.harness = h
        PauseMachine.loop = asyncio.get_running_loop()
        PauseMachine.stats = {"pauses": 0, "accepted": 0, "refused": 0, "resumed": 0, "steps_awaiting_approval": 0}
        PauseMachine.ran, PauseMachine.outcomes = Counter(), Counter()
        # No shrinking: a live pause cannot be replayed step for step; a failure is reported as found.
        config = settings(max_examples=EXAMPLES, stateful_step_count=50, deadline=None, derandomize=True,
                          phases=[HypothesisPhase.explicit, HypothesisPhase.generate],
                          suppress_health_check=list(HealthCheck))
        await asyncio.to_thread(run_state_machine_as_test, PauseMachine, settings=config)
        stats = PauseMachine.stats
        assert stats["accepted"] > 0 and stats["refused"] > 0 and stats["resumed"] > 0
        # Every rule ran, and each kind of action was seen both accepted and refused (a waiver only refused:
        # every agent is confirmed), so the number of examples is enough to have tried every rule.
        assert len(RULES) == 11 and RULES <= set(PauseMachine.ran), PauseMachine.ran
        kinds = {"CompleteItemInput", "ProposePlanInput", "RejectPlanInput", "ApproveInput"}
        wanted = {(kind, accepted) for kind in kinds for accepted in (True, False)} | {("WaiveAgentsInput", False)}
        assert wanted <= set(PauseMachine.outcomes), PauseMachine.outcomes
        record_result("hostile and mistaken actions (random actors)", f"{stats['pauses']} random pause lifecycles",
                      injected=stats["refused"] + stats["accepted"],
                      outcome=f"{stats['accepted']} accepted and {stats['refused']} refused exactly as the rules "
                              f"predict, all in the timeline; {stats['resumed']} resumed, each with quorum",
                      **stats)
