"""The consent source unreachable during a resume: the resume waits, switching nothing on, and says why;
once the source answers again it halts the agents of employees without consent and resumes the rest,
each once. The source is the worked example's consent table, so its database refuses every connection
(ALLOW_CONNECTIONS false, sessions ended) for the outage: the real failure, not a stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from temporalio.client import Client, WorkflowHandle

from pausegate.models.fleet import AgentState
from pausegate.models.phase import Phase
from pausegate.models.plan import AgentSelection
from tests.support.fault_report import record_result
from tests.support.harness import HarnessFactory
from tests.support.polling import polled
from tests.workflows.test_lifecycle import NARROWED_PLAN
from tests.workflows.test_resume_conditions import UNCONSENTED, to_awaiting_approval
from tests.workflows.test_resume_guard import approve

AGENTS = 10
CONSENTED_ONLY = NARROWED_PLAN.model_copy(update={"agents": AgentSelection(mode="consented"), "conditions": []})
HALT_UNCONSENTED = "halt_unconsented"


async def retried_step(client: Client, handle: WorkflowHandle[Any, Any], *, attempts: int) -> tuple[str, str]:
    """(activity, last failure) of the resume's step once it has been tried ``attempts`` times; failures are
    sealed like the rest of history, so the failure is read through the client's keys."""

    async def retried() -> tuple[str, str] | None:
        for pending in (await handle.describe()).raw_description.pending_activities:
            if pending.attempt >= attempts:
                failure = await client.data_converter.decode_failure(pending.last_failure)
                return pending.activity_type.name, str(failure)
        return None

    return await polled(retried, what=f"a step of the resume tried {attempts} times", every=0.2)


@contextmanager
def database_away(dsn: str) -> Iterator[None]:
    """The database refuses every new connection, and its sessions are ended, until the block ends."""
    name = conninfo_to_dict(dsn)["dbname"]
    admin = make_conninfo(dsn, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(str(name))))
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s"
                     " AND pid <> pg_backend_pid()", (name,))
    try:
        yield
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(str(name))))


async def test_the_resume_waits_for_an_unreachable_consent_source_and_switches_nothing_on_meanwhile(
    make_harness: HarnessFactory,
) -> None:
    async with make_harness(agents=AGENTS) as h:
        await to_awaiting_approval(h, CONSENTED_ONLY)
        program = h.fleet_state.program(h.program)
        switches_before = program.counters.switch_changes
        with database_away(h.database_dsn):
            status = await approve(h)
            handle = h.client.get_workflow_handle(status.pause_id)

            step, failure = await retried_step(h.client, handle, attempts=3)
            # while the source is away: nothing switched on, nothing resumed, and the reason is plain
            during = await h.status()
            assert during.phase == Phase.RESUMING
            assert program.switch.enabled is False and program.counters.switch_changes == switches_before
            assert all(program.state_of(program.agents[a]) == AgentState.HALTED for a in program.agents)
            # the first step that reads the dataset (the pre-resume check, then the consent read) waits
            assert step in {"check_dataset", HALT_UNCONSENTED}, step
            assert "cannot connect to PostgreSQL" in failure and "not currently accepting connections" in failure

        final = await h.wait_for_state(Phase.RESUMED, timeout=180)
        consent = final.conditions.consent if final.conditions else None
        assert consent is not None and consent.unconsented_employees == 1
        assert sorted(consent.agent_ids) == UNCONSENTED
        assert program.switch.enabled is True and program.counters.switch_changes == switches_before + 1
        states = {a: program.state_of(program.agents[a]) for a in program.agents}
        assert all(states[a] == AgentState.HALTED for a in UNCONSENTED)
        assert sum(s == AgentState.COLLECTING for s in states.values()) == AGENTS - len(UNCONSENTED)
        # the resume ran once: one consent entry, one RESUMED
        assert sum(e.action == "resume.consent" for e in final.timeline) == 1
        record_result("consent source unreachable", "resume while the consent table's database refuses connections",
                      injected=1, outcome="resume waited with the switch off, the step naming the refused "
                      "connection; resumed the consented agents once after", waiting_step=step)
