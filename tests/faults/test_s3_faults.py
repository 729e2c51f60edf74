"""The S3 evidence store (moto's server) unreachable, then slow, while containment seals: the revoke is not
held up, the sealing step retries, nothing half-written is referenced, and ``pausegate evidence audit``
finds every recorded object as the pause recorded it.

Between the worker and moto sits a proxy of the test's own that reads each request's line: requests for
sealed bundles (``/audit/`` in the key) are cut off (connection closed as the request arrives) or delayed;
every other request (the catalog the revoke stores first, the keys) passes, as when only the bundles'
traffic is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from pathlib import Path
from typing import Literal

import pytest

from pausegate.config import EvidenceSettings, Settings, TemporalSettings, dump_settings
from pausegate.models.phase import Phase
from tests.support.encryption import TEST_ENCRYPTION
from tests.support.fault_report import record_result
from tests.support.harness import HarnessFactory
from tests.support.s3_server import S3Server
from tests.workflows.test_evidence_anchoring import pausegate

PREFIX = "pausegate/"
Mode = Literal["pass", "down", "slow"]
METHODS = (b"GET ", b"PUT ", b"POST ", b"HEAD ", b"DELETE ")


class SealingProxy:
    """A TCP proxy to the S3 server that cuts off or delays the requests for sealed bundles."""

    def __init__(self, target: str, *, delay: float = 0.05) -> None:
        host, port = target.removeprefix("http://").split(":")
        self.target = (host, int(port))
        self.mode: Mode = "pass"
        self.delay = delay
        self.seen: Counter[str] = Counter()
        self.server: asyncio.Server | None = None
        self.open: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> SealingProxy:
        # A loop of its own in a thread of its own: the store's calls block the thread they are made on (the
        # harness builds the store on the test's loop), and a proxy on that loop would wait for them.
        started = threading.Event()
        self.loop = asyncio.new_event_loop()

        async def serve() -> None:
            self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.port = int(self.server.sockets[0].getsockname()[1])
            started.set()
            await self.server.serve_forever()

        def run() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                self.loop.run_until_complete(serve())

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert started.wait(10), "the proxy did not start"
        return self

    def __exit__(self, *_: object) -> None:
        def stop() -> None:
            assert self.server is not None
            self.server.close()
            # Connections kept alive would keep the S3 server's handler threads (and its stop) waiting.
            for writer in list(self.open):
                writer.close()
            for task in asyncio.all_tasks(self.loop):
                task.cancel()

        self.loop.call_soon_threadsafe(stop)
        self.thread.join(10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.open |= {writer, up_writer}
        self.open |= {writer, up_writer}

        async def back() -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await up_reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        answers = asyncio.create_task(back())
        try:
            while data := await reader.read(65536):
                if data.startswith(METHODS) and b"/audit/" in data.split(b"\r\n", 1)[0]:
                    self.seen[self.mode] += 1
                    if self.mode == "down":
                        return  # the connection goes, the request unanswered
                    if self.mode == "slow":
                        await asyncio.sleep(self.delay)
                up_writer.write(data)
                await up_writer.drain()
        except OSError:
            pass
        finally:
            answers.cancel()
            up_writer.close()
            writer.close()
            self.open -= {writer, up_writer}
            self.open -= {writer, up_writer}


@pytest.mark.slow
async def test_s3_unreachable_then_slow_while_sealing_retries_and_the_audit_is_clean(
    make_harness: HarnessFactory, s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.locked_bucket()
    with SealingProxy(s3_server.endpoint_url) as proxy:
        through_proxy = s3_server.settings(bucket, prefix=PREFIX).model_copy(update={"endpoint_url": proxy.url})
        async with make_harness(agents=20, evidence_s3=through_proxy) as h:
            proxy.mode = "down"
            await h.pause()
            away = await h.wait_for(lambda s: s.containment.access_gone_at is not None and proxy.seen["down"] >= 3,
                                    timeout=90, what="the revoke done and sealing cut off")
            assert away.phase == Phase.CONTAINING and not away.containment.evidence, "a bundle sealed while cut off"

            proxy.mode = "slow"
            status = await h.wait_for(lambda s: s.phase is Phase.UNDER_REVIEW and s.containment.exposure is not None,
                                      timeout=120, what="sealed through a slow store")
            assert not status.containment.evidence_pending and status.containment.evidence
            assert proxy.seen["slow"] > 0

            config = tmp_path / "config.toml"
            config.write_text(dump_settings(Settings(
                temporal=TemporalSettings(address=h.client.service_client.config.target_host,
                                          namespace=h.client.namespace, task_queue=h.task_queue),
                encryption=TEST_ENCRYPTION,
                evidence=EvidenceSettings(store="s3", s3=s3_server.settings(bucket, prefix=PREFIX),
                                          signing_key_fingerprint=h.connectors.evidence_store.signing_key_sha256),
            )))
            audited = await pausegate("evidence", "audit", h.program, config=config, cwd=tmp_path)
        assert audited.code == 0, audited.output
        assert "all evidence is what the pause recorded" in audited.stdout
    record_result("S3 evidence store unreachable, then slow", "sealing requests cut off, then delayed "
                  f"{proxy.delay}s each", injected=proxy.seen["down"] + proxy.seen["slow"],
                  outcome="revoke done meanwhile; sealing retried, sealed once reachable; evidence audit clean",
                  cut_off=proxy.seen["down"], delayed=proxy.seen["slow"])
