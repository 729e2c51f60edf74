"""The embedded stack's history encryption keys: created once in the data directory, kept across starts.

On first start the stack creates ``keys/history-1.key`` (the first AES-256 key, current) and
``keys/identifier.key`` (the key of id digests), each 0600 from its creation and never overwritten.
The ``[encryption]`` section the stack writes into ``config.toml`` names them; on later starts the
section already there is kept as it is, so keys added and made current by hand (rotation) survive
the launcher rewriting its configuration.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import structlog

from pausegate.config import EncryptionSettings, load_settings
from pausegate.errors import ConfigError
from pausegate.evidence.files import DIR_MODE, write_new
from pausegate.temporal.codec import Keyring, new_key_text

FIRST_KEY_ID = "history-1"

log = structlog.get_logger(__name__)


def _ensure_key_file(path: Path) -> None:
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    # O_EXCL: an existing key is never replaced (history sealed with it would become unreadable)
    with contextlib.suppress(FileExistsError):
        write_new(path, (new_key_text() + "\n").encode())


def embedded_encryption(data: Path, config_path: Path, *, ui_origin: str | None) -> EncryptionSettings | None:
    """The encryption section for the stack in ``data``: the one its config already has, else new keys.

    None for a data directory whose history was written before the stack encrypted it: its open
    pauses have plaintext payloads and name-based ids, which an encrypting worker would refuse and
    not find. (Encrypting it means starting from a new data directory; ``docs/encryption.md``.)
    """
    if config_path.exists():
        try:
            kept = load_settings(config_path).encryption
        except ConfigError as exc:
            log.warning("encryption_config_unreadable", path=str(config_path), error=str(exc)[:500])
        else:
            if kept is not None:
                # the UI's origin follows the ports of this start; the keys stay as configured
                return kept.model_copy(update={"ui_origin": ui_origin}) if ui_origin else kept
            if (data / "temporal.db").exists():
                log.warning("history_not_encrypted", data_dir=str(data),
                            detail="this data directory's history was written in plaintext; it stays so")
                return None
    keys = data / "keys"
    _ensure_key_file(keys / f"{FIRST_KEY_ID}.key")
    _ensure_key_file(keys / "identifier.key")
    settings = EncryptionSettings(
        current_key=FIRST_KEY_ID,
        key_files={FIRST_KEY_ID: keys / f"{FIRST_KEY_ID}.key"},
        identifier_key_file=keys / "identifier.key",
        ui_origin=ui_origin,
    )
    Keyring.from_settings(settings)  # fails here, naming the file, if a key file was damaged
    return settings
