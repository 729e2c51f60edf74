"""``pausegate checklist --scope``: the exposure's derived cause under the root-cause item, for reviewers
(issue 27); without a review role the API refuses the scope and nothing of it is printed."""

from __future__ import annotations

from pausegate.models.origins import CAUSE_ITEM
from tests.api.support import ApiWorld
from tests.cli.conftest import CliRunner


class TestChecklistWithTheDerivedCause:
    async def test_the_cause_is_printed_under_the_root_cause_item_for_a_reviewer_only(
        self, api: ApiWorld, cli: CliRunner
    ) -> None:
        answer = await api.client("carol").post("/v1/pauses", json={"program": api.program, "reason": "leak"})
        assert answer.status_code == 201, answer.text
        await api.wait_for_state("UNDER_REVIEW")
        p = api.program

        shown = await cli("checklist", p, "--scope", who="sam")
        assert shown.code == 0, shown.stderr
        out = shown.stdout
        cause = out.index("Derived cause (statement log): readable")  # the table wraps the rest
        # its own row, between the root-cause item's and the next item's
        assert out.index(f" {CAUSE_ITEM} ") < cause < out.index(" narrowed-access ")
        assert "schema_migrations" in out and "all_employees" in out

        plain = await cli("checklist", p, who="sam")  # without --scope: the checklist alone
        assert plain.code == 0 and "Derived cause" not in plain.stdout and "schema_migrations" not in plain.stdout

        refused = await cli("checklist", p, "--scope", who="ada")  # no role in the program
        assert refused.code != 0
        assert "Derived cause" not in refused.stdout + refused.stderr
        assert "schema_migrations" not in refused.stdout + refused.stderr
