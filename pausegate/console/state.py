"""What the console's requests share: sessions, templates, the live status watch, stream timing."""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio.client import Client

from pausegate.console.live import StatusWatch
from pausegate.console.oidc import PendingSignIns
from pausegate.console.render import Templates
from pausegate.console.sessions import SessionStore


@dataclass
class ConsoleState:
    """Put on the app as ``app.state.console`` by ``include_console``.

    ``stream_seconds`` bounds each live stream: the server cannot tell an open stream that it is
    shutting down (uvicorn drains connections before the app hears of it), so a stream ends by itself
    and the browser reconnects. ``heartbeat_seconds`` is how often an idle stream re-renders (times
    shown as "3 min ago" move on) and proves the session still holds.
    """

    sessions: SessionStore = field(default_factory=SessionStore)
    pending_sign_ins: PendingSignIns = field(default_factory=PendingSignIns)
    templates: Templates = field(default_factory=Templates)
    stream_seconds: float = 25.0
    heartbeat_seconds: float = 5.0
    watch_interval: float = 0.3
    _watch: StatusWatch | None = None

    def watch(self, client: Client) -> StatusWatch:
        """The one status watch of this app (made on first use, inside the serving event loop)."""
        if self._watch is None:
            self._watch = StatusWatch(client, interval=self.watch_interval)
        return self._watch
