"""Stopping the embedded PostgreSQL after Ctrl-C already reached it prints no failure."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from pausegate.embedded.postgres import start_postgres, stop_postgres


def test_a_server_that_ctrl_c_already_stopped_is_stopped_quietly(caplog: pytest.LogCaptureFixture) -> None:
    root = Path(tempfile.mkdtemp(prefix="pausegate-pg-stop-"))
    try:
        _, server = start_postgres(root / "pg", keep=True)
        pid = server.get_pid()
        assert pid is not None
        postmaster = psutil.Process(pid)
        # What a terminal's Ctrl-C does to the server: SIGINT, a fast shutdown of its own, which removes its
        # pid file; the process stays ours to reap, so the library still takes it for running.
        os.kill(pid, signal.SIGINT)
        pid_file = root / "pg" / "postmaster.pid"
        deadline = time.monotonic() + 30
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not pid_file.exists()
        with caplog.at_level(logging.DEBUG):
            stop_postgres(server)
        assert not postmaster.is_running() or postmaster.status() == psutil.STATUS_ZOMBIE
        assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    finally:
        shutil.rmtree(root, ignore_errors=True)
