"""One pause, one trace: the API's server span, StartWorkflow, RunWorkflow and every activity.

Spans are always made in the services (so log lines carry a trace id and Temporal headers carry the
context from the API to the worker); they are exported only when ``observability.otlp_endpoint`` is
set. The provider is process-wide (OpenTelemetry's global), set once by ``setup_tracing``.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from temporalio.contrib.opentelemetry import TracingInterceptor

from pausegate.config import ObservabilitySettings
from pausegate.logging import get_logger

log = get_logger("pausegate.observability.tracing")

# Probes and scrapes are not worth a trace each.
EXCLUDED_URLS = "healthz,metrics"


def setup_tracing(settings: ObservabilitySettings, role: str) -> TracerProvider:
    """Install the process's tracer provider (once) and, if configured, its OTLP exporter.

    ``role`` names the process (``api``, ``worker``, ``embedded``): ``service.name`` is
    ``<service_name>-<role>``. A second call in the same process reuses the installed provider.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        provider = current
    else:
        provider = TracerProvider(resource=Resource.create({"service.name": f"{settings.service_name}-{role}"}))
        trace.set_tracer_provider(provider)
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        headers = {k: v.get_secret_value() for k, v in settings.otlp_headers.items()}
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint,
                                                                          headers=headers)))
        log.info("tracing.exporting", endpoint=settings.otlp_endpoint, role=role)
    return provider


def tracing_interceptor() -> TracingInterceptor:
    """Temporal's tracing interceptor on the process's provider (a client's interceptors apply to its
    workers too): StartWorkflow/update spans on clients, RunWorkflow and RunActivity spans on workers."""
    return TracingInterceptor()


def instrument_api(app: Any) -> None:
    """A server span for every API request (its context travels into the workflow it starts)."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls=EXCLUDED_URLS)
