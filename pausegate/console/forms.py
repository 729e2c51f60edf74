"""Reading what a console form posted: URL-encoded fields, and a resume plan written as lines.

Posted text is hostile input (DESIGN.md, "Trust model"): fields are parsed by splitting, never by
backtracking patterns, with bounded counts; the gate has already bounded the body's size. What the
fields mean is then checked by the same pydantic models the JSON API validates with.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl

from pydantic import ValidationError

from pausegate.console.bridge import Refusal
from pausegate.console.data_action_lines import parse_data_action
from pausegate.models.access import GrantSpec
from pausegate.models.data_actions import DataAction
from pausegate.models.plan import AgentSelection, ResumePlan

MAX_FIELDS = 400
FORM_TYPE = "application/x-www-form-urlencoded"


class Form:
    """A posted form's fields (the last value wins for a repeated single field)."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self.pairs = list(pairs)
        self._last = dict(self.pairs)

    @classmethod
    def parse(cls, body: bytes, content_type: str) -> Form:
        """Fields of a URL-encoded body; another content type or too many fields is a 4xx ``Refusal``."""
        if content_type.split(";")[0].strip().lower() != FORM_TYPE:
            raise Refusal(415, "unsupported_media_type", f"the console takes forms posted as {FORM_TYPE}")
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False,
                              max_num_fields=MAX_FIELDS)
        except (UnicodeDecodeError, ValueError):
            raise Refusal(400, "bad_form", f"the form is not UTF-8 URL-encoded text of at most {MAX_FIELDS} fields")\
                from None
        return cls(pairs)

    def get(self, name: str, default: str = "") -> str:
        return self._last.get(name, default)

    def text(self, name: str, *, required: str | None = None) -> str:
        """The field stripped of surrounding white space; ``required`` names it in the refusal when empty."""
        value = self.get(name).strip()
        if required is not None and not value:
            raise Refusal(422, "invalid_request", f"{required} is required", [f"{name}: required"])
        return value


def lines(text: str) -> list[str]:
    """Non-empty lines without surrounding white space."""
    return [s.strip() for s in text.splitlines() if s.strip()]


def parse_grant(line: str) -> GrantSpec:
    """``DATASET ROLE TABLE PRIVILEGE[,PRIVILEGE…] [COLUMN[,COLUMN…]]`` as a grant (pydantic checks names)."""
    words = line.split()
    if len(words) not in (4, 5):
        raise ValueError("expected DATASET ROLE TABLE PRIVILEGES [COLUMNS]")
    privileges = [p for p in words[3].split(",") if p]
    columns = [c for c in words[4].split(",") if c] if len(words) == 5 else None
    return GrantSpec(dataset=words[0], role=words[1], table=words[2], privileges=privileges, columns=columns)


def grant_line(grant: GrantSpec) -> str:
    """A grant as ``parse_grant`` reads it (to show the current plan in the form)."""
    columns = f" {','.join(grant.columns)}" if grant.columns else ""
    return f"{grant.dataset} {grant.role} {grant.table} {','.join(grant.privileges)}{columns}"


def plan_from(form: Form) -> ResumePlan:
    """The resume plan a console form describes; every problem (with its line) in one ``Refusal``."""
    problems: list[str] = []
    grants: list[GrantSpec] = []
    for number, line in enumerate(form.get("grants").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            grants.append(parse_grant(stripped))
        except ValidationError as exc:
            problems += [f"grants line {number}: {e['msg']}" for e in exc.errors()[:5]]
        except ValueError as exc:
            problems.append(f"grants line {number}: {exc}")
    actions: list[DataAction] = []
    for number, line in enumerate(form.get("data_actions").splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            actions.append(parse_data_action(stripped))
        except ValidationError as exc:
            problems += [f"data actions line {number}: {e['msg']}" for e in exc.errors()[:5]]
        except ValueError as exc:
            problems.append(f"data actions line {number}: {exc}")
    ids = form.get("agent_ids").replace(",", " ").split()
    try:
        agents = AgentSelection(mode=form.get("agents_mode", "all"), agent_ids=ids)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems += [f"agents: {e['msg']}" for e in exc.errors()[:5]]
        agents = AgentSelection()
    if problems:
        raise Refusal(422, "invalid_plan", "the plan does not validate", problems[:50])
    try:
        return ResumePlan(agents=agents, grants=grants, conditions=lines(form.get("conditions")),
                          summary=form.text("summary"), data_actions=actions)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()][:50]
        raise Refusal(422, "invalid_plan", "the plan does not validate", problems) from None
