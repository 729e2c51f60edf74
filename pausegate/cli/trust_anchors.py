"""Where ``pausegate evidence`` takes what it trusts: the signing key's pin and the Temporal that holds
the pauses' records.

An auditor may be handed evidence together with a configuration, by the very insider the evidence
is about. So the configuration is only ever one the auditor named (``--config``, or
``$PAUSEGATE_CONFIG`` in their own environment) or the deployment's at the system path
(``/etc/pausegate/config.toml``); the working directory's ``.pausegate/config.toml`` is never read
unasked. A configuration that is named but does not load stops the command: falling back to no pin
would trust whatever key lies beside the evidence. What was trusted is printed with every result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from pausegate.config import CONFIG_ENV, Settings, load_settings
from pausegate.errors import ConfigError

SYSTEM_CONFIG = Path("/etc/pausegate/config.toml")
"""The deployment's configuration where an auditor's machine keeps it: the one path read unasked."""

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help=f"The deployment's configuration: the key pin and the Temporal holding the pauses' records. Default: "
        f"${CONFIG_ENV}, else {SYSTEM_CONFIG}; never the working directory's .pausegate/config.toml.",
    ),
]


@dataclass(frozen=True)
class TrustAnchors:
    """The configuration a command trusts (None: none at hand, and why), and where it came from."""

    settings: Settings | None
    source: str
    why: str = ""

    @property
    def pin(self) -> str | None:
        return self.settings.evidence.signing_key_fingerprint if self.settings is not None else None

    def lines(self) -> list[str]:
        """The anchors as the text output prints them, after the result."""
        if self.settings is None:
            return [f"  trust anchors     none ({self.why})"]
        temporal = self.settings.temporal
        return [
            f"  trust anchors     {self.source}",
            f"  key pin           {self.pin or 'none'}",
            f"  Temporal          {temporal.address} (namespace {temporal.namespace})",
        ]

    def as_json(self) -> dict[str, str | None]:
        if self.settings is None:
            return {"source": None, "why": self.why, "signing_key_fingerprint": None, "temporal_address": None,
                    "temporal_namespace": None}
        temporal = self.settings.temporal
        return {"source": self.source, "why": None, "signing_key_fingerprint": self.pin,
                "temporal_address": temporal.address, "temporal_namespace": temporal.namespace}


def trust_anchors(config: Path | None) -> TrustAnchors:
    """The configuration named by ``config``, ``$PAUSEGATE_CONFIG`` or the system path, in that order.

    Raises ``ConfigError`` when the named configuration is missing or does not load (the system path
    only when it exists but does not load)."""
    environment = os.environ.get(CONFIG_ENV)
    if config is not None:
        path, source = config, f"--config {config}"
    elif environment:
        path, source = Path(environment), f"${CONFIG_ENV} {environment}"
    elif SYSTEM_CONFIG.exists():
        path, source = SYSTEM_CONFIG, f"{SYSTEM_CONFIG} (system configuration)"
    else:
        return TrustAnchors(None, "", f"no configuration: neither --config, ${CONFIG_ENV} nor {SYSTEM_CONFIG}; the "
                            "working directory's is read only when named")
    try:
        return TrustAnchors(load_settings(path), source)
    except ConfigError as exc:
        raise ConfigError(f"the configuration named by {source} does not load; nothing is trusted: {exc}") from exc
