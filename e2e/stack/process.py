"""Start, watch and stop the stack's server processes: free ports, readiness checks, logs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class ServerFailed(RuntimeError):
    """A server could not be built, started or made ready; the message names it and its log file."""


@dataclass
class Process:
    """One server process the stack started, with the log its output goes to."""

    name: str
    pid: int
    log: Path

    def alive(self) -> bool:
        """Whether the process still runs (and is not a zombie)."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        try:
            waited, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # not our child (a stack started by `up`): kill(0) is the answer
            return True
        return waited == 0

    def kill(self, wait: float = 10.0) -> None:
        """SIGKILL the process group it leads (no chance to clean up) and wait until the process is gone."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group it leads, then SIGKILL after ``grace`` seconds."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not self.alive():
                    return
                time.sleep(0.1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn(name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> Process:
    """Start ``cmd`` in its own process group with stdout and stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    return Process(name=name, pid=proc.pid, log=log)


def tail(log: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"


def wait_ready(proc: Process, check: Callable[[], bool], timeout: float = 90.0) -> None:
    """Poll ``check`` until it returns True; raise ServerFailed if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if not proc.alive():
            raise ServerFailed(f"{proc.name} exited during start-up; log {proc.log}:\n{tail(proc.log)}")
        try:
            if check():
                return
        except Exception:  # not ready yet: connection refused, 503, ...
            pass
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    proc.stop()
    raise ServerFailed(f"{proc.name} was not ready after {timeout:.0f}s; log {proc.log}:\n{tail(proc.log)}")
