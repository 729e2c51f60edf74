"""Arguments and options several commands share."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
ProgramArg = Annotated[str, typer.Argument(help="The program's id (as in its runbook).")]
