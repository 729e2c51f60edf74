"""Connection URLs and tokens are secrets end to end: never in an error, a log line, the timeline or history."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Callable

import structlog
from hypothesis import given
from hypothesis import strategies as st

from pausegate.config import FleetConnection
from pausegate.logging import configure, get_logger, redact
from pausegate.models.phase import Phase
from tests.support.encryption import decrypted_history_json
from tests.support.fault_report import record_result
from tests.support.harness import HarnessFactory
from tests.support.work import lines_executed


def lines_run(fn: Callable[[], object]) -> int:
    """Lines of ``redact``'s module that ``fn`` executes."""
    return lines_executed(fn, lambda name: name == redact.__code__.co_filename)

SECRET = "s3cr3t-Pa55"


class TestRedact:
    def test_credentials_in_a_url_are_replaced_wherever_the_url_stands(self) -> None:
        text = f"fleet unreachable: GET http://ops:{SECRET}@10.0.0.1:8080/v1/programs/p/agents: ConnectError()"
        assert redact(text) == "fleet unreachable: GET http://***@10.0.0.1:8080/v1/programs/p/agents: ConnectError()"

    def test_secret_query_values_are_replaced_and_other_parameters_kept(self) -> None:
        assert redact(f"POST https://hooks.example/x?token={SECRET}&channel=sec#top") == \
            "POST https://hooks.example/x?token=***&channel=sec#top"

    def test_text_without_a_url_is_returned_unchanged(self) -> None:
        assert redact("revoke telemetry: role 'ann' does not exist") == "revoke telemetry: role 'ann' does not exist"

    @given(user=st.text(alphabet="abcdefgh:", min_size=1, max_size=20),
           password=st.text(alphabet="ABCDEFGHIJKLMNOP0123456789", min_size=8, max_size=30),
           before=st.text(max_size=50), after=st.text(max_size=50))
    def test_no_password_survives_in_any_surrounding_text(self, user: str, password: str, before: str,
                                                          after: str) -> None:
        text = f"{before} https://{user}:{password}@fleet.internal/v1 {after}"
        assert f"{user}:{password}@" not in redact(text)

    def test_a_hostile_line_is_redacted_in_linear_time(self) -> None:
        # Many scheme markers and no terminator: a backtracking pattern would take quadratic time or worse.
        # Its work is counted in lines executed, the same on a loaded machine as on an idle one.
        small, large = "http://" * 2_000, "http://" * 32_000
        assert lines_run(lambda: redact(large)) <= 1.1 * 16 * lines_run(lambda: redact(small))

    def test_the_connection_repr_and_dump_hide_the_url(self) -> None:
        conn = FleetConnection(url=f"http://ops:{SECRET}@fleet:8080")  # type: ignore[arg-type]
        assert SECRET not in repr(conn) and SECRET not in conn.model_dump_json()


def test_log_lines_carry_no_credentials() -> None:
    out = io.StringIO()
    configure(json=True, level=logging.INFO)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=out))
    try:
        get_logger("test").warning("fleet.unavailable", url=f"http://ops:{SECRET}@fleet/v1", error="refused")
    finally:
        configure(json=False)
    line = json.loads(out.getvalue())
    assert line["url"] == "http://***@fleet/v1" and SECRET not in out.getvalue()


def readable(node: object) -> str:
    """A history as text, payloads (base64 in the JSON form) decoded, so a search sees what they hold."""
    if isinstance(node, dict):
        parts = [readable(v) for v in node.values()]
        data = node.get("data")
        if isinstance(data, str) and "metadata" in node:
            parts.append(base64.b64decode(data).decode("utf-8", "replace"))
        return " ".join(parts)
    if isinstance(node, list):
        return " ".join(readable(v) for v in node)
    return str(node)


async def test_a_credential_in_the_fleet_url_never_reaches_status_timeline_or_history(
    make_harness: HarnessFactory,
) -> None:
    # Port 1 refuses connections: halting fails with the URL in the connector's error.
    async with make_harness(fleet_url=lambda _: f"http://ops:{SECRET}@127.0.0.1:1") as h:
        handle, _ = await h.pause()
        status = await h.wait_for(lambda s: s.containment.agents.last_error is not None, what="a failed halt")
        assert status.phase == Phase.CONTAINING
        assert "unreachable" in (status.containment.agents.last_error or "")
        assert "***@127.0.0.1:1" in (status.containment.agents.last_error or "")
        assert SECRET not in status.model_dump_json()
        history = readable(json.loads(decrypted_history_json(await handle.fetch_history())))
        assert "127.0.0.1:1" in history and h.program in history  # failures and payloads both read
        assert SECRET not in history
        record_result("credentials in a fleet URL", "the fleet unreachable", injected=1,
                      outcome="the error says where, never the password: not in status, timeline, history or logs")
        await handle.terminate("test done")
