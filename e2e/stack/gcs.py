"""A GCS emulator: fake-gcs-server, built with ``go install`` and cached by ``builds``."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from e2e.stack import builds
from e2e.stack.process import Process, free_port, spawn, wait_ready


@dataclass
class GcsServer:
    """A running GCS emulator with one bucket made for the tests."""

    endpoint: str
    bucket: str
    project: str
    process: Process


def start(workdir: Path, bucket: str = "pyrostore-test", project: str = "pyrostore-test") -> GcsServer:
    """Start fake-gcs-server on a free port with data in ``workdir`` and create ``bucket``."""
    binary = builds.fake_gcs_server()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [str(binary), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port)]
    cmd += ["-public-host", f"127.0.0.1:{port}", "-backend", "filesystem"]
    cmd += ["-filesystem-root", str(workdir / "data"), "-log-level", "warn"]
    proc = spawn("fake-gcs-server", cmd, workdir / "fake-gcs-server.log")
    endpoint = f"http://127.0.0.1:{port}"
    wait_ready(proc, lambda: urllib.request.urlopen(f"{endpoint}/storage/v1/b", timeout=2).status == 200)
    request = urllib.request.Request(
        f"{endpoint}/storage/v1/b?project={project}",
        data=json.dumps({"name": bucket}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request, timeout=10).close()
    return GcsServer(endpoint, bucket, project, proc)
