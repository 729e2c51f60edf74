"""The worker's Prometheus endpoint: the SDK's metrics and pausegate's, on one ``/metrics``.

pausegate's worker metrics go through the SDK's metric meter (``workflow.metric_meter()``), not
``prometheus_client``: the meter is replay-safe (a worker replaying a pause's history after a restart
or a cache eviction records nothing twice), its metrics leave by the same exporter as the SDK's own
(Prometheus here, OTLP if the runtime is so configured), and the worker needs one endpoint, not two.

They are recorded without touching the workflow's code, by a workflow interceptor: it reads the
results of the halt and seal activities as they complete, and an observer task in every pause run
waits (``workflow.wait_condition``, which issues no command, so history is unchanged) for the
pause's phase to change. Recorded:

- ``pausegate_pause_transitions_total{state}``: a pause entered ``state`` (one entered and left within
  one workflow task is not seen);
- ``pausegate_time_to_contain_seconds``: from the kill switch to every target confirmed;
- ``pausegate_halts_confirmed_total``: agents the fleet confirmed halted;
- ``pausegate_halts_unconfirmed_total``: after each halt attempt, agents still unconfirmed (a rate
  above zero means halts are failing);
- ``pausegate_evidence_sealed_bytes_total``: bytes of audit evidence sealed.

No program label: the endpoint says how many and how fast, not which program (the authenticated
status does). A run that continues as new starts from the state it carried, so nothing is counted twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from typing import Any

from temporalio import workflow
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

PAUSE_WORKFLOW = "PauseWorkflow"
CONTAIN_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)


def metrics_runtime(bind_address: str | None) -> Runtime | None:
    """A runtime serving Prometheus on ``bind_address`` (host:port), or None (the SDK's default runtime,
    which exports nothing). Clients connected with it, and their workers, report there."""
    if not bind_address:
        return None
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
        bind_address=bind_address,
        histogram_bucket_overrides={"pausegate_time_to_contain_seconds": list(CONTAIN_BUCKETS)},
    )))


@dataclass(frozen=True)
class _Snapshot:
    phase: str
    contained: bool


def _snapshot(state: Any) -> _Snapshot:
    return _Snapshot(phase=str(getattr(state.phase, "value", state.phase)),
                     contained=state.containment.contained_at is not None)


class _Meters:
    """This run's instruments, and the confirmed halts already counted (carried over by continue-as-new)."""

    def __init__(self, halted: int) -> None:
        meter = workflow.metric_meter()
        self.transitions = meter.create_counter("pausegate_pause_transitions_total", "Pauses entering a state.")
        self.contain = meter.create_histogram_float(
            "pausegate_time_to_contain_seconds", "From the kill switch to every target confirmed.", "s")
        self.halted = meter.create_counter("pausegate_halts_confirmed_total", "Agents the fleet confirmed halted.")
        self.unconfirmed = meter.create_counter(
            "pausegate_halts_unconfirmed_total", "Agents still unconfirmed after a halt attempt, summed over attempts.")
        self.sealed = meter.create_counter(
            "pausegate_evidence_sealed_bytes_total", "Bytes of audit evidence sealed.", "By")
        self.halted_so_far = halted

    def activity_done(self, activity: str, handle: asyncio.Future[Any]) -> None:
        if handle.cancelled() or handle.exception() is not None:
            return
        result = handle.result()
        if activity == "halt_agents":
            # ``halted`` counts every agent halted so far, this attempt's and earlier ones'.
            if result.halted > self.halted_so_far:
                self.halted.add(result.halted - self.halted_so_far)
                self.halted_so_far = result.halted
            if result.unconfirmed:
                self.unconfirmed.add(result.unconfirmed)
        elif activity == "snapshot_audit_source" and result.bundle.size_bytes:
            self.sealed.add(result.bundle.size_bytes)


async def _observe(instance: Any, meters: _Meters, last: _Snapshot) -> None:
    while True:
        await workflow.wait_condition(lambda seen=last: _snapshot(instance.state) != seen)  # type: ignore[misc]
        now = _snapshot(instance.state)
        if now.phase != last.phase:
            meters.transitions.add(1, {"state": now.phase})
        if now.contained and not last.contained:
            c = instance.state.containment
            meters.contain.record((c.contained_at - (c.started_at or instance.state.started_at)).total_seconds())
        last = now


class _PauseOutbound(WorkflowOutboundInterceptor):
    def __init__(self, next: WorkflowOutboundInterceptor, inbound: _PauseObserver) -> None:
        super().__init__(next)
        self._inbound = inbound

    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        handle = super().start_activity(input)
        meters = self._inbound.meters
        if meters is not None and input.activity in ("halt_agents", "snapshot_audit_source"):
            handle.add_done_callback(partial(meters.activity_done, input.activity))
        return handle


class _PauseObserver(WorkflowInboundInterceptor):
    meters: _Meters | None = None

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_PauseOutbound(outbound, self))

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        if workflow.info().workflow_type != PAUSE_WORKFLOW:
            return await super().execute_workflow(input)
        instance = workflow.instance()
        self.meters = _Meters(instance.state.containment.agents.halted)
        # Waits only (no timer, no activity): the pause's history is the same with or without it.
        # The first snapshot now, before the run starts (its first step runs before this task does).
        observer = asyncio.create_task(_observe(instance, self.meters, _snapshot(instance.state)))
        try:
            return await super().execute_workflow(input)
        finally:
            observer.cancel()


class PauseMetricsInterceptor(Interceptor):
    """Records pausegate's metrics from every pause run on this worker (see the module's docstring)."""

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _PauseObserver
