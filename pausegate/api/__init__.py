"""The HTTP API people use to act on pauses (see docs/api.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pausegate.api.app import create_app
    from pausegate.api.server import serve_api

__all__ = ["create_app", "serve_api"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the CLI reads pausegate.api.models without paying for the whole app.
    if name == "create_app":
        from pausegate.api.app import create_app

        return create_app
    if name == "serve_api":
        from pausegate.api.server import serve_api

        return serve_api
    raise AttributeError(name)
