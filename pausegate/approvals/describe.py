"""How an approval counted, in one phrase for reports and pages: the key that signed it and its enrollment,
or that a token alone made it."""

from __future__ import annotations

from pausegate.models.plan import Approval


def signed_by(approval: Approval) -> str:
    """``signed with passkey 3f2a… enrolled 2026-03-01 by local:cleo, confirmed by local:ada``, or ``token only``."""
    signature = approval.signature
    if signature is None:
        return "token only (not signed)"
    key = signature.key
    confirmed = ", ".join(key.confirmed_by) or "nobody"
    return (f"signed with {'passkey' if key.kind == 'passkey' else 'SSH key'} {key.key_id[:16]} enrolled "
            f"{key.enrolled_at:%Y-%m-%d %H:%M} UTC by {key.enrolled_by}, confirmed by {confirmed}")
