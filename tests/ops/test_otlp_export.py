"""Configured, traces leave over OTLP/HTTP with the configured headers (a receiver on loopback)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

ROOT = Path(__file__).resolve().parents[2]


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, str | None, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        Receiver.received.append((self.path, self.headers.get("authorization"), body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_spans_reach_the_configured_otlp_endpoint_with_its_headers(tmp_path: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}/v1/traces"
        config = tmp_path / "config.toml"
        config.write_text("[observability]\n"
                          f'otlp_endpoint = "{endpoint}"\n'
                          'otlp_headers = { authorization = "${OTLP_AUTH}" }\n')
        # A process of its own: the tracer provider is process-wide.
        script = textwrap.dedent(f"""
            from pathlib import Path
            from opentelemetry import trace
            from pausegate.config import load_settings
            from pausegate.observability.tracing import setup_tracing
            provider = setup_tracing(load_settings(Path({str(config)!r})).observability, "worker")
            with trace.get_tracer("t").start_as_current_span("one-pause"):
                pass
            provider.shutdown()
        """)
        env = {**os.environ, "OTLP_AUTH": "Bearer s3cret", "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    finally:
        server.shutdown()
    assert Receiver.received, "no export arrived"
    path, authorization, body = Receiver.received[0]
    assert path == "/v1/traces" and authorization == "Bearer s3cret"
    request = ExportTraceServiceRequest.FromString(body)
    resource = request.resource_spans[0]
    names = [s.name for scope in resource.scope_spans for s in scope.spans]
    assert names == ["one-pause"]
    service = {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"]
    assert service == "pausegate-worker"
