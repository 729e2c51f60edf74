"""Console sessions: a token exchanged once for a cookie, kept in memory on the server.

The cookie carries only a random session id (256 bits); the store keys sessions by that id's SHA-256,
so the store itself holds nothing a cookie could be forged from. A session ends at the first of: sign-out,
its idle timeout, its absolute lifetime, or the token it was opened with no longer authenticating.

The token is kept with the session (in this process's memory only, never in the cookie or on disk)
so every request re-proves it through the app's authenticator: a local user removed or re-roled, or
a token re-issued, takes effect on the next click, not when the session would have expired. This is
the one place the console holds a credential. A person signed in through OIDC holds their ID token
here instead, re-verified the same way, so the session ends when it expires
(``pausegate.console.oidc``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_COOKIE = "pausegate_session"
SECURE_SESSION_COOKIE = "__Host-pausegate_session"
"""Over TLS the cookie takes the ``__Host-`` prefix: the browser then refuses it unless it is Secure,
has Path=/ and no Domain, so a sibling subdomain cannot plant or overwrite it."""

SIGN_IN_COOKIE = "pausegate_sign_in"
"""Before a session exists, the sign-in form's CSRF token is checked against this cookie (double
submit), so another site cannot sign a victim into the attacker's identity."""


@dataclass(frozen=True)
class SessionPolicy:
    """How long a session lives, and how many one person may hold."""

    idle_seconds: float = 30 * 60
    lifetime_seconds: float = 8 * 60 * 60
    per_actor: int = 20


@dataclass
class Session:
    """One signed-in browser."""

    actor_id: str
    token: str = field(repr=False)
    csrf: str = field(repr=False)
    created: float
    last_seen: float
    flash: list[str] = field(default_factory=list)

    def csrf_matches(self, offered: str | None) -> bool:
        """Whether ``offered`` is this session's CSRF token (compared in constant time)."""
        return offered is not None and hmac.compare_digest(offered.encode(), self.csrf.encode())


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()


class SessionStore:
    """Sessions by id, in memory (one API process; a restart signs everyone out).

    ``clock`` is injectable so tests expire a session without waiting for it.
    """

    def __init__(self, policy: SessionPolicy | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.policy = policy or SessionPolicy()
        self.clock = clock
        self._sessions: dict[str, Session] = {}

    def open(self, actor_id: str, token: str) -> tuple[str, Session]:
        """A new session for ``actor_id``; returns the id for the cookie (never stored) and the session."""
        now = self.clock()
        self._sweep(now)
        mine = sorted((s.created, k) for k, s in self._sessions.items() if s.actor_id == actor_id)
        # A person signing in again and again (new browsers, cleared cookies) cannot grow the store without bound.
        for _, key in mine[: max(0, len(mine) - self.policy.per_actor + 1)]:
            del self._sessions[key]
        session_id = secrets.token_urlsafe(32)
        session = Session(actor_id=actor_id, token=token, csrf=secrets.token_urlsafe(32), created=now, last_seen=now)
        self._sessions[_key(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id (touching it), or None when unknown or expired."""
        if not session_id or len(session_id) > 100:
            return None
        key = _key(session_id)
        session = self._sessions.get(key)
        if session is None:
            return None
        now = self.clock()
        if self._expired(session, now):
            del self._sessions[key]
            return None
        session.last_seen = now
        return session

    def peek(self, session_id: str | None) -> Session | None:
        """The live session with this id, without touching it: a page left open on a live stream does
        not keep an idle session alive."""
        if not session_id or len(session_id) > 100:
            return None
        session = self._sessions.get(_key(session_id))
        if session is None or self._expired(session, self.clock()):
            return None
        return session

    def close(self, session_id: str | None) -> None:
        """End a session (sign-out, or its token no longer authenticates)."""
        if session_id:
            self._sessions.pop(_key(session_id), None)

    def remaining(self, session: Session) -> float:
        """Seconds until ``session`` expires if left idle (the cookie's Max-Age)."""
        now = self.clock()
        ends = min(session.last_seen + self.policy.idle_seconds, session.created + self.policy.lifetime_seconds)
        return max(0.0, ends - now)

    def _expired(self, session: Session, now: float) -> bool:
        return (now - session.last_seen > self.policy.idle_seconds
                or now - session.created > self.policy.lifetime_seconds)

    def _sweep(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[key]

    def __len__(self) -> int:
        return len(self._sessions)
