"""The resume plan's conditions: halting the agents of employees without consent, resuming only the
consenting ones, and checking that a resumed program runs as its plan says (fleet and data alike)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial

from temporalio import activity

from activities.fleet import in_batches, list_agents, resume_program
from activities.heartbeat import running
from pausegate.canonical import canonical_json, sha256_hex
from pausegate.connectors.interfaces import FleetConnector
from pausegate.connectors.postgres.conditions import PostgresConditions
from pausegate.errors import TargetRejectedError
from pausegate.evidence.interface import EvidenceStore
from pausegate.evidence.layout import consent_snapshot_key, unconsented_agents_key
from pausegate.models.conditions import (
    MAX_LISTED,
    ConditionsCheck,
    ConditionsInput,
    ConsentOutcome,
    ConsentRecord,
    ConsentSource,
    HaltUnconsentedInput,
    StampWritesInput,
    WithdrawalWritten,
    WriteWithdrawalInput,
)
from pausegate.models.evidence import EvidenceRef
from pausegate.models.fleet import Agent, AgentResultStatus, AgentState
from pausegate.models.steps import ResumeAgentsInput, ResumeAgentsResult
from pausegate.policy.conditions import counts_as_consent


class ConditionActivities:
    """Activities over a program's fleet and the dataset holding its consent and its collected rows."""

    def __init__(self, fleets: Callable[[str], FleetConnector], postgres: Callable[[str], PostgresConditions],
                 store: EvidenceStore) -> None:
        self._fleets = fleets
        self._postgres = postgres
        self._store = store

    async def _consent_rows(self, source: ConsentSource) -> list[ConsentRecord]:
        dataset = source.dataset
        db = self._postgres(dataset.connection)
        # Only a table whose database records who wrote each row is read: a flag without its writer
        # cannot be told from one an employee flipped.
        await db.ensure_provenance(dataset.schema_name, source.consent)
        return await db.consent_rows(dataset.schema_name, source.consent)

    async def _consenting(self, source: ConsentSource, withdrawn: list[str],
                          rows: list[ConsentRecord] | None = None) -> set[str]:
        if rows is None:
            rows = await self._consent_rows(source)
        return {r.subject for r in rows if counts_as_consent(source.consent, r)} - set(withdrawn)

    def _seal_snapshot(self, source: ConsentSource, pause_key: str,
                       rows: list[ConsentRecord]) -> tuple[EvidenceRef, int]:
        """The consent table as the resume read it, each row with its writer, the time the server
        recorded and whether it counted; and how many grants did not count."""
        spec = source.consent
        listed = [{"subject": r.subject, "granted": r.granted, "granted_by": r.granted_by,
                   "granted_as": r.granted_as,
                   "granted_at": r.granted_at.isoformat() if r.granted_at is not None else None,
                   "counted": counts_as_consent(spec, r)}
                  for r in sorted(rows, key=lambda r: r.subject)]
        document = {"table": f"{source.dataset.schema_name}.{spec.table}", "granting_roles": spec.granting_roles,
                    "rows": listed}
        digest = sha256_hex(canonical_json(document))
        ref = self._store.put_json(consent_snapshot_key(pause_key, digest), document)
        return ref, sum(1 for r in listed if r["granted"] is True and not r["counted"])

    @activity.defn(name="check_consent")
    async def check_consent(self, input: ConsentSource) -> list[str]:
        """At proposal: why the consent table cannot be read (a missing table or column); empty when it can."""
        async with running():
            try:
                await self._consenting(input, [])
            except TargetRejectedError as exc:
                return [f"consent: {exc}"]
            return []

    @activity.defn(name="halt_unconsented")
    async def halt_unconsented(self, input: HaltUnconsentedInput) -> ConsentOutcome:
        """Halt, one by one, every agent of an employee who has not consented (an agent naming no employee
        cannot show consent either); offline ones are halted when they return. The full list is evidence."""
        async with running():
            rows = await self._consent_rows(input.source)
            consenting = await self._consenting(input.source, input.withdrawn, rows)
            fleet = self._fleets(input.connection)
            agents = await list_agents(fleet, input.program)
            if input.only is not None:
                chosen = set(input.only)
                out = [a for a in agents if a.employee in chosen]
            else:
                out = [a for a in agents if a.employee is None or a.employee not in consenting]
            result = await in_batches(partial(fleet.halt, input.program), [a.id for a in out],
                                      incident_id=input.incident_id, action=f"halt-{input.key}",
                                      batch_size=input.batch_size, concurrency=input.concurrency) if out else None
            status = {r.agent_id: r.status for r in result.results} if result else {}
            # Who, not how the halt went (the counts say that): a resume repeated after a refusal names the
            # same document as long as consent and the fleet are unchanged.
            document = [{"agent_id": a.id, "employee": a.employee} for a in out]
            ref = None
            # Only the resume's halt files a document, which the pause records; a withdrawal during the watch
            # names its one employee in the watch's state, and the closed pause's evidence stays as recorded.
            if document and input.only is None:
                digest = sha256_hex(canonical_json(document))
                ref = self._store.put_json(unconsented_agents_key(input.pause_key, digest), document)
            snapshot, not_counted = self._seal_snapshot(input.source, input.pause_key, rows) \
                if input.only is None else (None, 0)
            employees = {a.employee for a in agents if a.employee is not None}
            return ConsentOutcome(
                consenting_employees=len(employees & consenting),
                unconsented_employees=len({a.employee for a in out}),
                agents_halted=sum(1 for s in status.values() if s == AgentResultStatus.CONFIRMED),
                agents_pending=sum(1 for a in out if status.get(a.id) != AgentResultStatus.CONFIRMED),
                agent_ids=[a.id for a in out][:MAX_LISTED],
                document=ref,
                snapshot=snapshot,
                grants_not_counted=not_counted,
            )

    @activity.defn(name="stamp_writes")
    async def stamp_writes(self, input: StampWritesInput) -> datetime:
        """Before the switch goes on: the server stamps every write to the tables where a dropped data
        type lands, so the check finds a row by when it was written, not by the time its writer claims.
        The server's clock once every table is stamped."""
        async with running():
            spec, dataset = input.collected.collection, input.collected.dataset
            db = self._postgres(dataset.connection)
            tables = sorted({spec.data_types[t].table for t in input.dropped if t in spec.data_types})
            at: datetime | None = None
            for table in tables:
                at = await db.stamp_writes(dataset.schema_name, table)
            assert at is not None, "no table to stamp"
            return at

    @activity.defn(name="write_withdrawal")
    async def write_withdrawal(self, input: WriteWithdrawalInput) -> WithdrawalWritten:
        """Write a consent withdrawn during the watch back to the consent table, so that it outlives the
        watch: a later resume reads the employee as without consent until a grant through the allowed
        path records it again."""
        async with running():
            dataset = input.source.dataset
            db = self._postgres(dataset.connection)
            await db.ensure_provenance(dataset.schema_name, input.source.consent)
            changed, at = await db.withdraw(dataset.schema_name, input.source.consent, input.employee)
            return WithdrawalWritten(rows_changed=changed, written_at=at)

    @activity.defn(name="resume_consented_agents")
    async def resume_consented_agents(self, input: ResumeAgentsInput) -> ResumeAgentsResult:
        """Switch the program on and resume only the selected agents of employees who consented."""
        async with running():
            assert input.consent is not None
            consenting = await self._consenting(input.consent, [])

            def consented(agent: Agent) -> bool:
                return agent.employee is not None and agent.employee in consenting

            return await resume_program(self._fleets(input.connection), input, keep=consented)

    @activity.defn(name="check_conditions")
    async def check_conditions(self, input: ConditionsInput) -> ConditionsCheck:
        """Whether every collecting agent runs the plan's profile and belongs to a consenting employee,
        and no row collected since the resume carries a data type the plan dropped."""
        async with running():
            fleet = self._fleets(input.connection)
            collecting = await list_agents(fleet, input.program, state=AgentState.COLLECTING)
            wanted = input.data_types
            off_profile = [a.id for a in collecting if wanted is not None and a.data_types != wanted]
            unconsented: list[str] = []
            if input.consent is not None:
                consenting = await self._consenting(input.consent, input.withdrawn)
                unconsented = [a.id for a in collecting if a.employee is None or a.employee not in consenting]
            dropped_rows, dropped_types = 0, []
            if wanted is not None and input.collected is not None:
                spec, dataset = input.collected.collection, input.collected.dataset
                db = self._postgres(dataset.connection)
                for data_type, where in sorted(spec.data_types.items()):
                    if data_type in wanted:
                        continue
                    rows = await db.rows_carrying(dataset.schema_name, where.table, where.columns,
                                                  spec.collected_at, input.since, input.written_since)
                    activity.heartbeat(f"checked {data_type}")
                    if rows:
                        dropped_rows += rows
                        dropped_types.append(data_type)
            return ConditionsCheck(
                agents_collecting=len(collecting),
                off_profile=len(off_profile), off_profile_ids=off_profile[:MAX_LISTED],
                unconsented=len(unconsented), unconsented_ids=unconsented[:MAX_LISTED],
                dropped_rows=dropped_rows, dropped_types=dropped_types,
            )
