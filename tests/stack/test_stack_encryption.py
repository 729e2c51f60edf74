"""The embedded stack encrypts history by default: keys kept owner-only in its data directory, the Web UI
pointed at the API's codec endpoint, and a pause's history unreadable without the key."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from pausegate.config import load_settings
from pausegate.embedded.stack import EXAMPLE_PROGRAM, StackOptions, embedded_stack
from pausegate.temporal import ids
from pausegate.temporal.codec import ENCODING

pytestmark = pytest.mark.slow


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's private tmp dir: the embedded PostgreSQL runs as its own user.
    path = Path(tempfile.mkdtemp(prefix="pausegate-stack-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(path.with_name(f"{path.name}-postgres"), ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_embedded_stack_encrypts_history_and_points_its_web_ui_at_the_codec(data_dir: Path) -> None:
    ui_port = free_port()
    options = StackOptions(data_dir=data_dir, agents=50, temporal_port=None, ui_port=ui_port, browse_seconds=None,
                           fleet_latency_ms=1.0, fleet_jitter_ms=1.0, telemetry_tick_seconds=0.1)
    async with embedded_stack(options) as stack:
        settings = load_settings(stack.config_path)
        encryption = settings.encryption
        assert encryption is not None and encryption.current_key == "history-1"
        assert encryption.ui_origin == f"http://127.0.0.1:{ui_port}"
        key_files = [*encryption.key_files.values(), encryption.identifier_key_file]
        assert [stat.S_IMODE(p.stat().st_mode) for p in key_files if p] == [0o600, 0o600]

        async with httpx.AsyncClient(base_url=stack.ui_url or "", timeout=30) as ui:
            ui_settings = (await ui.get("/api/v1/settings")).json()
        assert ui_settings["Codec"]["Endpoint"] == f"{stack.api_url}/codec"

        async with httpx.AsyncClient(base_url=stack.api_url, timeout=30,
                                     headers={"Authorization": f"Bearer {stack.admin_token}"}) as api:
            r = await api.post("/v1/pauses", json={"program": EXAMPLE_PROGRAM, "reason": "readable company-wide"})
            assert r.status_code == 201, r.text
            preflight = await api.options("/codec/decode", headers={
                "Origin": encryption.ui_origin, "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace"})
            assert preflight.headers.get("access-control-allow-origin") == encryption.ui_origin

            client = stack.temporal.client
            workflow_id = ids.pause_id(client, EXAMPLE_PROGRAM)
            assert EXAMPLE_PROGRAM not in workflow_id
            blind = Client(client.service_client, namespace=client.namespace, data_converter=pydantic_data_converter)
            history = (await blind.get_workflow_handle(workflow_id).fetch_history()).to_json()
            assert "company-wide" not in history and EXAMPLE_PROGRAM not in history
            started = json.loads(history)["events"][0]["workflowExecutionStartedEventAttributes"]
            payload = started["input"]["payloads"][0]
            assert base64.b64decode(payload["metadata"]["encoding"]) == ENCODING

            decoded = await api.post("/codec/decode", json={"payloads": [payload]})  # the admin reads history
            assert decoded.status_code == 200
            assert EXAMPLE_PROGRAM in base64.b64decode(decoded.json()["payloads"][0]["data"]).decode()
