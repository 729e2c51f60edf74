"""Fixtures for notification tests: the reference chat sink on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from pausegate.reference.chat_sink import ChatSink, RunningSink


@pytest.fixture
async def chat_sink() -> AsyncIterator[RunningSink]:
    async with RunningSink(ChatSink(hooks={"T000/B000/secret-token"})) as running:
        yield running
