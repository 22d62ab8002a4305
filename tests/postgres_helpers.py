"""A PostgreSQL server for the tests of SQL catalogs: Debian's PostgreSQL 15 in a temporary data folder on a free
port, run as the unprivileged ``postgres`` user (it refuses to run as root). Fails, never skips, when it cannot
start."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from e2e.stack.process import ServerFailed, free_port, spawn, wait_ready

BIN = Path("/usr/lib/postgresql/15/bin")
USER = "postgres"


def _as_user(cmd: list[str]) -> list[str]:
    return cmd if os.geteuid() != 0 else ["runuser", "-u", USER, "--", *cmd]


@contextmanager
def postgres_server(folder: Path) -> Iterator[str]:
    """Start PostgreSQL with its log in ``folder``; yield a SQLAlchemy URL of its ``postgres`` database.

    The data folder is a fresh one under the system's temporary folder (pytest's are private to root, where the
    ``postgres`` user cannot reach), removed afterwards."""
    if not (BIN / "initdb").exists():
        raise ServerFailed(f"PostgreSQL is not installed at {BIN} (Debian's postgresql-15 package)")
    home = Path(tempfile.mkdtemp(prefix="pyrostore-pg-"))
    try:
        yield from _run(home, folder)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _run(home: Path, folder: Path) -> Iterator[str]:
    data = home / "data"
    if os.geteuid() == 0:
        shutil.chown(home, USER, USER)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "postgres.log"
    init = subprocess.run(
        _as_user([str(BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", USER]), capture_output=True, text=True
    )
    if init.returncode != 0:
        raise ServerFailed(f"initdb failed: {init.stderr.strip()[-500:]}")
    port = free_port()
    options = ["-D", str(data), "-p", str(port), "-k", str(home), "-c", "listen_addresses=127.0.0.1"]
    process = spawn("postgres", _as_user([str(BIN / "postgres"), *options]), log)

    def ready() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
        check = subprocess.run(
            [str(BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True, timeout=10
        )
        return check.returncode == 0

    try:
        wait_ready(process, ready, timeout=60)
        yield f"postgresql+psycopg2://{USER}@127.0.0.1:{port}/postgres"
    finally:
        process.stop()
