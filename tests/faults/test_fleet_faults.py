"""A slow and failing fleet: latency, connection resets, the fleet down for a minute, partial batches,
and a fleet that says the program or agent does not exist. The end state must be right, retries must
back off, and every agent the fleet did not confirm must be listed."""

from __future__ import annotations

import time

import httpx
import pytest

from pausegate.models.phase import Phase
from pausegate.models.plan import AgentSelection, ResumePlan
from pausegate.models.state import Tuning
from pausegate.models.updates import ApproveInput, ProposePlanInput
from pausegate.reference.fleet.settings import FaultSettings
from tests.faults.support import attempts, fleet_effects, fleet_faults, slow_attempts
from tests.faults.test_crash_sweep import approve
from tests.support.fault_report import record_result
from tests.support.harness import CISO, COMMANDER, CPO, Harness, HarnessFactory
from tests.workflows.test_lifecycle import NARROWED_PLAN, complete_review

TUNING = Tuning(halt_retry_initial_seconds=0.5, halt_retry_max_seconds=4.0, activity_heartbeat_seconds=2.0)
OFFLINE = [f"agent-{n:05d}" for n in range(1, 21)]
SLOW_HEARTBEAT_SECONDS = 1.5  # the crash sweep's: short, and still steady on a loaded machine
DOWN_UNTIL_BACK = 3600.0  # the outage test brings the fleet back itself, once the pause has retried


async def set_online(h: Harness, agent_ids: list[str]) -> None:
    async with httpx.AsyncClient(base_url=h.fleet.url) as client:
        response = await client.post(f"/admin/programs/{h.program}/online", json={"agent_ids": agent_ids})
        response.raise_for_status()


async def contained(h: Harness) -> float:
    """Seconds from the pause's start until containment was done."""
    status = await h.wait_for(lambda s: s.containment.contained_at is not None, what="containment")
    assert status.containment.contained_at is not None and status.containment.started_at is not None
    return (status.containment.contained_at - status.containment.started_at).total_seconds()


class TestSlowFleet:
    @pytest.mark.slow
    async def test_latency_of_twice_the_heartbeat_timeout_on_every_call_still_contains_and_resumes(
        self, make_harness: HarnessFactory
    ) -> None:
        """The heartbeat timeout is half of one fleet call: a live activity waiting on a slow target must not
        be taken for a dead worker."""
        tuning = TUNING.model_copy(update={"activity_heartbeat_seconds": SLOW_HEARTBEAT_SECONDS})
        slow = FaultSettings(latency_ms=2_000 * SLOW_HEARTBEAT_SECONDS, jitter_ms=0)
        async with make_harness(agents=100, tuning=tuning, faults=slow) as h:
            handle, _ = await h.pause()
            try:
                seconds = await contained(h)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; retried attempts: {await slow_attempts(handle)}") from None
            await h.wait_for_state(Phase.UNDER_REVIEW, Phase.AWAITING_APPROVAL)
            effects = fleet_effects(h)
            assert effects.switch_changes == 1 and effects.collecting == 0
            await approve(h)
            final = await handle.result()
            assert final.phase == Phase.RESUMED and fleet_effects(h).switch_changes == 2
            assert fleet_effects(h).collecting == 100
            record_result(f"{2 * SLOW_HEARTBEAT_SECONDS:g} s latency on every fleet call",
                          f"contain and resume, {SLOW_HEARTBEAT_SECONDS:g} s heartbeat timeout",
                          injected=sum(fleet_faults(h).requests.values()),
                          outcome="RESUMED; switch applied 2x (off, on); no agent collecting while paused",
                          contain_s=round(seconds, 1))


class TestFailingFleet:
    @pytest.mark.slow
    async def test_connection_resets_are_retried_and_apply_nothing_twice(self, make_harness: HarnessFactory) -> None:
        resets = FaultSettings(latency_ms=1, jitter_ms=0, reset_rate=0.3)
        async with make_harness(agents=100, tuning=TUNING, faults=resets) as h:
            handle, _ = await h.pause()
            seconds = await contained(h)
            effects = fleet_effects(h)
            assert effects.switch_changes == 1 and effects.collecting == 0
            await approve(h)
            final = await handle.result()
            assert final.phase == Phase.RESUMED
            effects = fleet_effects(h)
            assert effects.switch_changes == 2 and effects.collecting == 100
            injected = fleet_faults(h).injected["reset"]
            assert injected >= 1
            record_result("connection reset (30% of fleet requests)", "contain and resume", injected=injected,
                          outcome="RESUMED; switch applied 2x (off, on)", contain_s=round(seconds, 1))

    @pytest.mark.slow
    async def test_a_fleet_down_is_waited_out_with_backoff(self, make_harness: HarnessFactory) -> None:
        """The fleet is down until the pause's halt has failed (its attempts spaced by the retry policy's
        backoff) and the pause has waited and tried it again: that shows the retries spaced out, not hammered,
        and the pause contained once the fleet is back. The outage ends on that, not after a set time."""
        async with make_harness(agents=100, tuning=TUNING) as h:
            faults = fleet_faults(h)
            faults.update(FaultSettings(latency_ms=1, jitter_ms=0, down_seconds=DOWN_UNTIL_BACK))
            handle, _ = await h.pause()
            status = await h.wait_for(lambda s: s.containment.agents.last_error is not None,
                                      what="a failed halt recorded")
            assert status.phase == Phase.CONTAINING and not status.containment.agents.confirmed
            assert fleet_effects(h).switch_changes == 0
            await h.wait_for(lambda s: s.containment.agents.attempts >= 2, what="the halt tried again")
            during = faults.injected["down"]
            faults.update(FaultSettings(latency_ms=1, jitter_ms=0))
            seconds = await contained(h)
            assert fleet_effects(h).switch_changes == 1 and fleet_effects(h).collecting == 0
            # While down, requests were retried with backoff, not hammered: each refused request was one
            # attempt of an activity (the halt, the audit trail's snapshot), and those follow the retry policy.
            tries = await attempts(handle)
            assert tries["halt_agents"][0] > 1, tries  # the first halt was retried, then failed
            assert during <= sum(tries["halt_agents"]) + sum(tries["snapshot_audit_source"]), (during, tries)
            final_status = await h.status()
            assert any(e.action == "containment.agents.failed" for e in final_status.timeline)
            await approve(h)
            assert (await handle.result()).phase == Phase.RESUMED
            record_result("fleet down through a failed halt and its retry", "pause during the outage", injected=during,
                          outcome="contained after the outage; switch applied once; RESUMED",
                          contain_s=round(seconds, 1))

    @pytest.mark.slow
    async def test_partial_batches_list_every_agent_not_confirmed(self, make_harness: HarnessFactory) -> None:
        partial = FaultSettings(latency_ms=1, jitter_ms=0, ops=["halt"], partial_rate=1.0, partial_mode="pending")
        async with make_harness(agents=100, tuning=TUNING, faults=partial, offline_agents=OFFLINE) as h:
            await h.pause()
            status = await h.wait_for(lambda s: s.containment.agents.attempts >= 2, what="a retried halt")
            agents = status.containment.agents
            assert status.phase == Phase.CONTAINING and not agents.confirmed
            assert agents.unconfirmed == len(OFFLINE) and agents.unconfirmed_ids == sorted(OFFLINE)
            assert fleet_effects(h).collecting == 0
            await set_online(h, OFFLINE)
            await h.wait_for_state(Phase.UNDER_REVIEW)
            effects = fleet_effects(h)
            assert effects.collecting == 0 and effects.max_halts_per_agent <= 1
            record_result("partial batch (half applied, rest answered pending)", "20 agents offline",
                          injected=fleet_faults(h).injected["partial"],
                          outcome="all 20 listed unconfirmed until they returned; then confirmed")

    @pytest.mark.slow
    async def test_a_batch_answer_that_leaves_agents_out_does_not_confirm_them(
        self, make_harness: HarnessFactory
    ) -> None:
        """A fleet that answers for only part of a batch has not confirmed the rest."""
        partial = FaultSettings(latency_ms=1, jitter_ms=0, ops=["halt"], partial_rate=1.0, partial_mode="omit")
        async with make_harness(agents=100, tuning=TUNING, faults=partial, offline_agents=OFFLINE) as h:
            await h.pause()
            status = await h.wait_for(lambda s: s.containment.agents.attempts >= 2 or s.containment.agents.confirmed,
                                      what="a halt answered")
            agents = status.containment.agents
            assert not agents.confirmed, "agents left out of the fleet's answer were counted as confirmed"
            assert agents.unconfirmed == len(OFFLINE) and agents.unconfirmed_ids == sorted(OFFLINE)
            record_result("batch answer leaves agents out", "20 agents offline",
                          injected=fleet_faults(h).injected["partial"], outcome="all 20 listed unconfirmed")


class TestRejectingFleet:
    async def test_a_program_the_fleet_does_not_know_fails_fast_and_is_reported(
        self, make_harness: HarnessFactory
    ) -> None:
        async with make_harness(agents=10, tuning=TUNING) as h:
            ghost = h.runbook.program.model_copy(update={"id": f"ghost-{h.program}"})
            h.runbook = h.runbook.model_copy(update={"program": ghost})
            h.program = ghost.id
            handle, _ = await h.pause()
            try:
                started = time.monotonic()
                status = await h.wait_for(lambda s: s.containment.agents.last_error is not None,
                                          what="the halt's failure")
                elapsed = time.monotonic() - started  # for the fault report, not a limit
                error = status.containment.agents.last_error or ""
                assert "TargetRejectedError" in error and "404" in error and ghost.id in error
                # Non-retryable: one attempt, no backoff.
                tries = await attempts(handle)
                assert tries and all(n == 1 for runs in tries.values() for n in runs), tries
                assert any(e.action == "containment.agents.failed" and not e.accepted for e in status.timeline)
                record_result("fleet 404: program does not exist", "pause", injected=1,
                              outcome="halt failed on its first attempt (non-retryable) and the error is in the "
                                      "pause's status and timeline", seconds_to_report=round(elapsed, 2))
            finally:
                await handle.terminate("test over")

    async def test_an_agent_the_fleet_does_not_know_is_listed_not_resumed(self, make_harness: HarnessFactory) -> None:
        async with make_harness(agents=10, tuning=TUNING, offline_agents=["agent-00003"]) as h:
            handle, _ = await h.pause()
            await h.wait_for(lambda s: s.containment.agents.unconfirmed == 1, what="the offline agent listed")
            await set_online(h, ["agent-00003"])
            await h.wait_for_state(Phase.UNDER_REVIEW)
            await complete_review(h)
            plan = ResumePlan(agents=AgentSelection(mode="listed", agent_ids=["agent-00003", "agent-99999"]),
                              grants=NARROWED_PLAN.grants, summary="one agent back, one unknown")
            await h.act(ProposePlanInput(actor=COMMANDER, plan=plan))
            status = await h.wait_for_state(Phase.AWAITING_APPROVAL)
            assert status.approval_digest is not None
            await h.act(ApproveInput(actor=CISO, role="ciso", digest=status.approval_digest))
            await h.act(ApproveInput(actor=CPO, role="cpo", digest=status.approval_digest))
            final = await handle.result()
            assert final.phase == Phase.RESUMED
            detail = next(e.detail for e in final.timeline if e.action == "resume.agents")
            assert "(1 resumed one by one)" in detail and "1 will resume" in detail
            assert final.resumed is not None and final.resumed.resumed_individually == 1
            p = h.fleet_state.program(h.program)
            assert p.agents["agent-00003"].resumes == 1 and "agent-99999" not in p.agents
            record_result("fleet: agent does not exist", "resume plan names an unknown agent", injected=1,
                          outcome="RESUMED; the unknown agent is counted unconfirmed, the known one resumed once")
