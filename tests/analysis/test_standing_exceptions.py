"""The runbook's static break-glass roles as standing exceptions, with what who saw what says they read."""

from __future__ import annotations

from pausegate.analysis.standing_exceptions import runbook_roles, standing_exceptions
from pausegate.analysis.who_saw_what import ObjectReads, WhoSawWhat
from tests.support.harness import example_runbook


def reads(user: str, obj: str, n: int, failed: int = 0, dataset: str | None = "telemetry") -> ObjectReads:
    return ObjectReads(dataset=dataset, user=user, object=obj, reads=n, failed=failed)


class TestStandingExceptions:
    def test_each_static_role_is_listed_with_its_reads_of_its_dataset_only(self) -> None:
        runbook = example_runbook("telemetry-x")
        report = WhoSawWhat(entries=[
            reads("security_breakglass", "telemetry.keystrokes", 3),
            reads("security_breakglass", "telemetry.mouse_events", 0, failed=2),
            reads("security_breakglass", "other.table", 9, dataset="other"),
            reads("employee_0003", "telemetry.keystrokes", 7),
        ], users=["security_breakglass", "employee_0003"], statements=21)
        [standing] = standing_exceptions(runbook_roles(runbook), report)
        assert standing.model_dump() == {"dataset": "telemetry", "role": "security_breakglass", "reads": 3,
                                         "failed": 2, "objects": ["telemetry.keystrokes"]}

    def test_before_who_saw_what_is_derived_the_reads_are_unknown_not_zero(self) -> None:
        [standing] = standing_exceptions(runbook_roles(example_runbook("telemetry-x")), None)
        assert standing.reads is None and standing.role == "security_breakglass"
