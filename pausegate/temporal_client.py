"""The one place that builds a Temporal client (worker, API, CLI and tests all use it)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import TLSConfig

from pausegate.config import TemporalSettings


async def connect(settings: TemporalSettings) -> Client:
    """Connect to Temporal with the pydantic data converter, TLS and API key as configured."""
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
        data_converter=pydantic_data_converter,
        tls=tls,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
    )
