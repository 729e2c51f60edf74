"""The HTTP API people use to act on pauses (see docs/api.md)."""

from __future__ import annotations

from pausegate.api.app import create_app
from pausegate.api.server import serve_api

__all__ = ["create_app", "serve_api"]
