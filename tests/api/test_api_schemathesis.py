"""Generated requests against the published OpenAPI document: no input makes the API fail (5xx)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.api.support import ApiWorld

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api-openapi.json"


class TestGeneratedInput:
    async def test_published_document_matches_the_app(self, api: ApiWorld) -> None:
        assert json.loads(DOCS.read_text()) == json.loads(json.dumps(api.app.openapi(), sort_keys=True)), (
            "docs/api-openapi.json is stale: python -m pausegate.api --openapi docs/api-openapi.json"
        )

    @pytest.mark.parametrize("program", ["generated", "real"])
    async def test_no_server_error_on_generated_input(self, api: ApiWorld, tmp_path: Path, program: str) -> None:
        binary = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
        r = await api.client("carol").post("/v1/pauses", json={"program": api.program, "reason": "fuzzing"})
        assert r.status_code == 201
        await api.wait_for_state("UNDER_REVIEW")
        config = tmp_path / "schemathesis.toml"
        # "real": every path names the open pause, so generated bodies reach the workflow's validators. Only
        # the operations with the pause in their path: the others are sent the same requests in "generated".
        config.write_text(f'[parameters]\n"path.program" = "{api.program}"\n' if program == "real" else "")
        only = ["--include-path-regex", r"\{program\}"] if program == "real" else []
        proc = await asyncio.create_subprocess_exec(
            binary,
            "--config-file",
            str(config),
            "run",
            str(DOCS),
            "--url",
            api.url,
            "-H",
            f"Authorization: Bearer {api.tokens['sam']}",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "15",
            "--seed",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            "--no-color",
            *only,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
        )
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
        text = output.decode()
        assert proc.returncode == 0, text[-4000:]
        ran = re.search(r"(\d+) generated, (\d+) passed", text)
        assert ran is not None and int(ran.group(2)) >= 100, text[-2000:]
        view = await api.view()
        assert view["state"] in ("UNDER_REVIEW", "AWAITING_APPROVAL")
