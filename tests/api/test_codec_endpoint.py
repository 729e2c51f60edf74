"""The codec endpoint a Temporal Web UI calls: decodes for history readers only, refuses (and records) the
rest, and answers CORS only for the configured UI origin."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from pausegate.temporal import ids
from pausegate.temporal.codec import ENCODING, KEY_ID_METADATA, EncryptionCodec, Keyring
from tests.api.support import ADMIN, ApiWorld, api_world, local
from tests.console.test_console_http import signed_in
from tests.support.encryption import TEST_KEY_ID, TEST_KEYRING, fixed_key
from tests.support.harness import Harness

UI_ORIGIN = "http://temporal-ui.example.test:8233"
REASON = "mouse telemetry of the legal team readable by everyone"


@pytest_asyncio.fixture
async def world(harness: Harness, tmp_path: Path) -> AsyncIterator[ApiWorld]:
    """An API whose deployment names a Web UI origin, with one pause started."""
    assert harness.settings.encryption is not None
    harness.settings = harness.settings.model_copy(
        update={"encryption": harness.settings.encryption.model_copy(update={"ui_origin": UI_ORIGIN})})
    async with api_world(harness, tmp_path / "api", extra_people=[ADMIN]) as api:
        r = await api.client("carol").post("/v1/pauses", json={"program": api.program, "reason": REASON})
        assert r.status_code == 201, r.text
        yield api


async def started_payloads(api: ApiWorld) -> dict[str, Any]:
    """The pause's input as the Web UI sends it: ``{"payloads": [...]}``, straight out of history."""
    client = api.harness.client
    raw = Client(client.service_client, namespace=client.namespace, data_converter=pydantic_data_converter)
    history = await raw.get_workflow_handle(ids.pause_id(client, api.program)).fetch_history()
    tree = json.loads(history.to_json())
    return {"payloads": tree["events"][0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"]}


def text_of(body: dict[str, Any]) -> str:
    return "".join(base64.b64decode(p.get("data", "")).decode() for p in body["payloads"])


class TestCodecEndpoint:
    async def test_a_history_reader_reads_the_pause_as_it_was_written(self, world: ApiWorld) -> None:
        body = await started_payloads(world)
        assert REASON not in json.dumps(body)
        assert base64.b64decode(body["payloads"][0]["metadata"]["encoding"]) == ENCODING
        for who in ("carol", "ada"):  # an incident commander, an admin
            r = await world.client(who).post("/codec/decode", json=body, headers={"X-Namespace": "default"})
            assert r.status_code == 200, r.text
            decoded = r.json()
            assert REASON in text_of(decoded) and world.program in text_of(decoded)
            assert base64.b64decode(decoded["payloads"][0]["metadata"]["encoding"]) == b"json/plain"

    async def test_an_unauthenticated_caller_gets_401_and_a_reviewer_403_on_the_refusal_log(
        self, world: ApiWorld
    ) -> None:
        body = await started_payloads(world)
        assert (await world.client(token=None).post("/codec/decode", json=body)).status_code == 401
        assert (await world.client(token="pgt_forged").post("/codec/decode", json=body)).status_code == 401
        refused = await world.client("ann").post("/codec/decode", json=body)  # a security analyst
        assert refused.status_code == 403 and refused.json()["error"] == "wrong_role"
        assert "decoding workflow history is for roles admin, incident-commander" in refused.json()["detail"]
        assert REASON not in refused.text
        encode = await world.client("carol").post("/codec/encode", json=body)  # forging is the admin's only
        assert encode.status_code == 403
        log = (await world.client("ada").get("/v1/refusals")).json()["entries"]
        assert {(e["actor"], e["action"]) for e in log} >= {
            (local("ann"), "refused.codec_decode"), (local("carol"), "refused.codec_encode")}

    async def test_encode_seals_with_the_current_key_and_decode_names_a_key_it_lacks(self, world: ApiWorld) -> None:
        plain = {"payloads": [{"metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                               "data": base64.b64encode(b'"hello"').decode()}]}
        r = await world.client("ada").post("/codec/encode", json=plain)
        assert r.status_code == 200, r.text
        sealed = r.json()["payloads"][0]
        assert base64.b64decode(sealed["metadata"][KEY_ID_METADATA]).decode() == TEST_KEY_ID
        back = await world.client("carol").post("/codec/decode", json=r.json())
        assert back.json() == plain

        elsewhere = EncryptionCodec(Keyring(keys={"retired": fixed_key("retired")}, current="retired",
                                            identifier_key=TEST_KEYRING.identifier_key))
        [foreign] = await elsewhere.encode([Payload(metadata={"encoding": b"json/plain"}, data=b"x")])
        unknown = {"payloads": [{"metadata": {k: base64.b64encode(v).decode() for k, v in foreign.metadata.items()},
                                 "data": base64.b64encode(foreign.data).decode()}]}
        r = await world.client("carol").post("/codec/decode", json=unknown)
        assert r.status_code == 422 and "key id 'retired'" in r.json()["detail"]
        other = await world.client("carol").post("/codec/decode", json=plain, headers={"X-Namespace": "other-ns"})
        assert other.status_code == 404 and other.json()["error"] == "unknown_namespace"
        bad = await world.client("carol").post("/codec/decode", json={"payloads": [{"data": "!!"}]})
        assert bad.status_code == 422

    async def test_cors_answers_the_configured_ui_origin_only_and_only_on_the_codec(self, world: ApiWorld) -> None:
        anyone = world.client(token=None)
        preflight = {"Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization,content-type,x-namespace"}
        ok = await anyone.options("/codec/decode", headers={"Origin": UI_ORIGIN, **preflight})
        assert ok.status_code == 200
        assert ok.headers["access-control-allow-origin"] == UI_ORIGIN
        assert ok.headers["access-control-allow-credentials"] == "true"
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        assert "x-namespace" in ok.headers["access-control-allow-headers"].lower()

        evil = await anyone.options("/codec/decode", headers={"Origin": "https://evil.example", **preflight})
        assert evil.status_code == 400 and "access-control-allow-origin" not in evil.headers
        elsewhere = await anyone.options(f"/v1/pauses/{world.program}", headers={"Origin": UI_ORIGIN, **preflight})
        assert "access-control-allow-origin" not in elsewhere.headers

        body = await started_payloads(world)
        actual = await world.client("carol").post("/codec/decode", json=body, headers={"Origin": UI_ORIGIN})
        assert actual.status_code == 200 and actual.headers["access-control-allow-origin"] == UI_ORIGIN
        # even a refusal is readable by the UI, so it can say why
        denied = await anyone.post("/codec/decode", json=body, headers={"Origin": UI_ORIGIN})
        assert denied.status_code == 401 and denied.headers["access-control-allow-origin"] == UI_ORIGIN

    async def test_a_web_ui_without_a_token_of_its_own_sends_the_persons_console_session(
        self, world: ApiWorld
    ) -> None:
        body = await started_payloads(world)
        async with signed_in(world, "carol") as carol, signed_in(world, "ann") as ann:
            assert "authorization" not in carol.headers
            r = await carol.post("/codec/decode", json=body, headers={"Origin": UI_ORIGIN})
            assert r.status_code == 200, r.text
            assert REASON in text_of(r.json()) and r.headers["access-control-allow-credentials"] == "true"
            assert (await ann.post("/codec/decode", json=body)).status_code == 403
        async with httpx.AsyncClient(base_url=world.url, cookies={"pausegate_session": "guessed"}) as forged:
            assert (await forged.post("/codec/decode", json=body)).status_code == 401
