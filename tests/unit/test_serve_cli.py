"""``pyrostore serve`` as a command: bad input is one ``error:`` line, and it serves until SIGTERM, then exits 0."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from kio.schema.errors import ErrorCode

from pyrostore.store import open_store
from tests.helpers import build_partition
from tests.serve_helpers import ServeProcess, call, free_port

USAGE, RUNTIME = 2, 1


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small archive of topic ``orders`` in a local folder."""
    url = str(tmp_path_factory.mktemp("serve-cli") / "archive")
    build_partition(open_store(url), "orders", 0, segments=2)
    return url


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--listen", "localhost"], USAGE, ["--listen", "HOST:PORT"]),
        (["--listen", "127.0.0.1:70000"], USAGE, ["--listen"]),
        (["--advertise", "x:y"], USAGE, ["--advertise"]),
        (["--listen", "0.0.0.0:9092"], USAGE, ["--advertise"]),
        (["--topic", "a/b"], USAGE, ["'a/b'"]),
        (["--batch-bytes", "lots"], USAGE, ["--batch-bytes"]),
        (["--compression", "lz4"], USAGE, ["--compression"]),
        (["--topic", "missing", "--listen", "127.0.0.1:0"], RUNTIME, ["'missing'"]),
    ],
)
def test_bad_input_is_one_line(archive, args, code, words):
    result = subprocess.run(
        [sys.executable, "-m", "pyrostore", "serve", "--store", archive, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert all(word in lines[0] for word in words), lines[0]


def test_a_port_in_use_is_a_runtime_error(archive, tmp_path):
    first = ServeProcess(archive, free_port(), tmp_path / "first.log").start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pyrostore", "serve", "--store", archive, "--listen", first.bootstrap],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == RUNTIME
        assert result.stderr.startswith("error: cannot listen on") and result.stderr.count("\n") == 1
    finally:
        assert first.stop() == 0


def test_serves_until_sigterm(archive, tmp_path):
    server = ServeProcess(archive, free_port(), tmp_path / "serve.log").start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            body = call(sock, 18, 3, client_software_name="t", client_software_version="1")
        assert body.error_code == ErrorCode.none
    finally:
        assert server.stop() == 0
    assert '"message": "serving orders from' in server.log_text()
