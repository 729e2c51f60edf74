"""The pure rules about a plan's conditions: what a plan may ask of the runbook."""

from __future__ import annotations

import pytest

from pausegate.errors import ActionRefused
from pausegate.models.conditions import CollectionPlan
from pausegate.models.data_actions import NullColumn
from pausegate.models.plan import AgentSelection, ResumePlan
from pausegate.policy.conditions import check_plan_conditions, has_conditions
from tests.support.harness import example_runbook

RUNBOOK = example_runbook("employee-telemetry")
NULL_TYPED = NullColumn(dataset="telemetry", table="keystrokes", column="typed_content")
NARROW = CollectionPlan(data_types=["key_codes", "mouse_buttons", "mouse_positions"])


class TestPlanConditions:
    def test_a_plan_without_conditions_has_none_and_passes(self) -> None:
        plan = ResumePlan()
        assert not has_conditions(plan)
        check_plan_conditions(RUNBOOK, plan)

    def test_consent_needs_a_consent_source_in_the_runbook(self) -> None:
        plan = ResumePlan(agents=AgentSelection(mode="consented"))
        check_plan_conditions(RUNBOOK, plan)
        without = RUNBOOK.model_copy(update={"consent": None})
        with pytest.raises(ActionRefused, match="names no consent source"):
            check_plan_conditions(without, plan)
        with pytest.raises(ActionRefused, match="names no consent source"):
            check_plan_conditions(without, ResumePlan(consent_required=True))

    def test_a_data_action_on_an_unknown_dataset_is_refused(self) -> None:
        plan = ResumePlan(collection=NARROW, data_actions=[NULL_TYPED.model_copy(update={"dataset": "other"})])
        with pytest.raises(ActionRefused, match="dataset 'other' is not one of the runbook's"):
            check_plan_conditions(RUNBOOK, plan)

    def test_nulling_a_column_whose_type_is_still_collected_is_refused(self) -> None:
        with pytest.raises(ActionRefused, match=r"empties keystrokes\.typed_content, but agents would go on "
                                                r"capturing typed_content"):
            check_plan_conditions(RUNBOOK, ResumePlan(data_actions=[NULL_TYPED]))
        check_plan_conditions(RUNBOOK, ResumePlan(collection=NARROW, data_actions=[NULL_TYPED]))
