"""A server that cannot start fails loudly, naming itself and its log file."""

from __future__ import annotations

import sys

import pytest

import e2e.stack
from e2e.stack import ServerFailed, Stack
from e2e.stack.process import spawn, wait_ready


def test_a_server_that_exits_is_named_with_its_log(tmp_path):
    log = tmp_path / "broken.log"
    script = "print('bad config: port missing'); raise SystemExit(3)"
    proc = spawn("broken-server", [sys.executable, "-c", script], log)
    with pytest.raises(ServerFailed) as failed:
        wait_ready(proc, lambda: False, timeout=30)
    message = str(failed.value)
    assert "broken-server" in message
    assert str(log) in message
    assert "bad config: port missing" in message


def test_a_server_that_never_gets_ready_is_stopped_and_named(tmp_path):
    log = tmp_path / "slow.log"
    proc = spawn("slow-server", [sys.executable, "-c", "import time; time.sleep(60)"], log)
    with pytest.raises(ServerFailed, match=r"slow-server was not ready after 1s; log .*slow\.log"):
        wait_ready(proc, lambda: False, timeout=1)
    assert not proc.alive()


def test_the_stack_remembers_a_failed_start(tmp_path, monkeypatch):
    calls = []

    def failing_start(workdir):
        calls.append(workdir)
        raise ServerFailed(f"kafka exited during start-up; log {workdir}/kafka.log")

    monkeypatch.setitem(e2e.stack._STARTERS, "kafka", failing_start)
    stack = Stack(tmp_path)
    for _ in range(2):
        with pytest.raises(ServerFailed, match=r"kafka\.log"):
            stack.get("kafka")
    assert len(calls) == 1
