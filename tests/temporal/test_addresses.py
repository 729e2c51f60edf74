"""The address a message to a pause carries, and the rule that refuses one sent anywhere else."""

from __future__ import annotations

import pytest

from pausegate.models.people import Actor
from pausegate.models.seals import SealedFor, delivery_problem
from pausegate.models.updates import CompleteItemInput

HERE = SealedFor(namespace="default", workflow_id="pause/aaa", pause_chain="run-1", update_id="api-1")


def elsewhere(**change: str) -> SealedFor:
    return HERE.model_copy(update=change)


class TestDelivery:
    def test_a_message_sealed_for_where_it_arrived_is_taken(self) -> None:
        assert delivery_problem(HERE, HERE) is None
        start = SealedFor(namespace="default", workflow_id="pause/aaa")
        assert delivery_problem(start, start) is None

    @pytest.mark.parametrize(("sealed_for", "problem"), [
        (None, "carries no address"),
        (elsewhere(namespace="staging"), "another workflow"),
        (elsewhere(workflow_id="pause/bbb"), "another workflow"),
        (elsewhere(pause_chain="run-0"), "another pause of this program"),
        (elsewhere(update_id="api-2"), "another update"),
    ])
    def test_a_message_sealed_for_anywhere_else_is_refused_saying_why(
        self, sealed_for: SealedFor | None, problem: str
    ) -> None:
        assert problem in (delivery_problem(sealed_for, HERE) or "")

    def test_a_start_address_does_not_pass_for_an_update(self) -> None:
        start = SealedFor(namespace="default", workflow_id="pause/aaa")
        assert delivery_problem(start, HERE) == "the message was sealed for another pause of this program"

    def test_the_address_travels_inside_the_message_and_defaults_to_none(self) -> None:
        item = CompleteItemInput(actor=Actor(id="ann", roles=["security-analyst"]), item_id="access-review")
        assert item.sealed_for is None
        addressed = item.model_copy(update={"sealed_for": HERE})
        assert CompleteItemInput.model_validate_json(addressed.model_dump_json()).sealed_for == HERE
