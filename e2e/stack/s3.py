"""An S3 server: MinIO, built with ``go install`` and cached by ``builds``; over HTTP, or over HTTPS with the
stack's test certificates."""

from __future__ import annotations

import secrets
import shutil
import ssl
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from e2e.stack import builds, certs
from e2e.stack.process import Process, free_port, spawn, wait_ready


@dataclass
class S3Server:
    """A running S3 server with one bucket made for the tests."""

    endpoint: str
    access_key: str
    secret_key: str
    bucket: str
    region: str
    process: Process
    ca_file: Path | None = None  # HTTPS: the CA that signed the server's certificate


def start_tls(workdir: Path) -> S3Server:
    """Start MinIO serving HTTPS with a certificate of the stack's test CA (for 127.0.0.1 and localhost)."""
    pki = certs.ensure(workdir.parent / "certs")
    folder = workdir / "certs"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pki.server.cert, folder / "public.crt")
    shutil.copyfile(pki.server.key, folder / "private.key")
    return start(workdir, tls=(folder, pki.ca))


def start(workdir: Path, bucket: str = "pyrostore-test", tls: tuple[Path, Path] | None = None) -> S3Server:
    """Start MinIO on a free port with data in ``workdir`` and create ``bucket``; with ``tls`` (MinIO's certs
    folder and the CA file that signed its certificate) over HTTPS."""
    binary = builds.minio()
    workdir.mkdir(parents=True, exist_ok=True)
    port, console = free_port(), free_port()
    access_key, secret_key = "pyrostore", secrets.token_hex(16)
    env = {
        "MINIO_ROOT_USER": access_key,
        "MINIO_ROOT_PASSWORD": secret_key,
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
        "MINIO_REGION": "us-east-1",
    }
    cmd = [str(binary), "server", str(workdir / "data"), "--quiet"]
    cmd += ["--address", f"127.0.0.1:{port}", "--console-address", f"127.0.0.1:{console}"]
    cmd += ["--certs-dir", str(tls[0])] if tls else []
    proc = spawn("minio", cmd, workdir / "minio.log", env=env)
    endpoint = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    context = ssl.create_default_context(cafile=tls[1]) if tls else None
    wait_ready(
        proc,
        lambda: urllib.request.urlopen(f"{endpoint}/minio/health/ready", timeout=2, context=context).status == 200,
    )
    server = S3Server(endpoint, access_key, secret_key, bucket, "us-east-1", proc, tls[1] if tls else None)
    client(server).create_bucket(Bucket=bucket)
    return server


def client(server: S3Server, endpoint: str | None = None, attempts: int | None = None):  # -> botocore S3 client
    """A boto3 S3 client with the server's root credentials, at ``endpoint`` (a proxy in front of the server)
    if given; ``attempts`` caps botocore's own tries (1: no retry)."""
    import boto3
    from botocore.config import Config

    retries = {"mode": "standard", **({"total_max_attempts": attempts} if attempts else {})}
    return boto3.client(
        "s3",
        endpoint_url=endpoint or server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
        config=Config(s3={"addressing_style": "path"}, retries=retries),
        verify=str(server.ca_file) if server.ca_file else None,
    )


def store_options(server: S3Server, endpoint: str | None = None) -> dict[str, str]:
    """Pyrostore store options reaching the server (or a proxy at ``endpoint``) with its root credentials."""
    return {
        "endpoint_url": endpoint or server.endpoint,
        "region": server.region,
        "access_key_id": server.access_key,
        "secret_access_key": server.secret_key,
        **({"ca_bundle": str(server.ca_file)} if server.ca_file else {}),
    }
