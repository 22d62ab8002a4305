"""The local stack of real servers: Kafka (with a SASL_SSL listener too), an S3 server (and a second one over
HTTPS), a GCS emulator, etcd and kube-apiserver, PostgreSQL,
and Toxiproxy for faults between them and their clients.

``Stack`` starts each server on first use, on free loopback ports with its data and log in one folder, and
stops exactly the processes it started. Used by ``tests/conftest.py`` and by ``python -m e2e.stack``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from e2e.stack import gcs, kafka, kube, postgres, s3, toxiproxy
from e2e.stack.builds import BuildError
from e2e.stack.process import Process, ServerFailed

__all__ = ["SERVERS", "ServerFailed", "Stack"]

SERVERS = ("kafka", "s3", "s3tls", "gcs", "kube", "postgres", "toxiproxy")
_STARTERS: dict[str, Callable[[Path], Any]] = {
    "kafka": kafka.start,
    "s3": s3.start,
    "s3tls": s3.start_tls,
    "gcs": gcs.start,
    "kube": kube.start,
    "postgres": postgres.start,
    "toxiproxy": toxiproxy.start,
}


class Stack:
    """Servers started on demand under ``workdir``; each starts at most once, failures are remembered."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._servers: dict[str, Any] = {}
        self._failures: dict[str, ServerFailed] = {}
        self._locks = {name: threading.Lock() for name in SERVERS}

    def get(self, name: str) -> Any:
        """The running server ``name`` (one of SERVERS), started now if needed. Raises ServerFailed."""
        with self._locks[name]:
            if name in self._failures:
                raise self._failures[name]
            if name not in self._servers:
                try:
                    self._servers[name] = _STARTERS[name](self.workdir / name)
                except BuildError as exc:
                    self._failures[name] = ServerFailed(f"{name}: {exc}")
                    raise self._failures[name] from exc
                except ServerFailed as exc:
                    self._failures[name] = exc
                    raise
            return self._servers[name]

    def start_all(self, names: tuple[str, ...] = SERVERS) -> None:
        """Start the named servers concurrently; raise the first failure after all have been tried."""
        with ThreadPoolExecutor(len(names)) as pool:
            futures = [pool.submit(self.get, name) for name in names]
        for future in futures:
            future.result()

    def processes(self) -> list[Process]:
        """Every process this stack started, in start order."""
        found = []
        for server in self._servers.values():
            found += [p for p in (getattr(server, "etcd", None), server.process) if p is not None]
            found += [p for p in [getattr(server, "controller_manager", None)] if p is not None]
        return found

    def stop(self) -> None:
        """Stop every process this stack started (and only those)."""
        for proc in reversed(self.processes()):
            proc.stop()
        self._servers.clear()

    def describe(self) -> dict[str, Any]:
        """Connection details of the running servers, as ``python -m e2e.stack up --json`` prints them."""
        info: dict[str, Any] = {"workdir": str(self.workdir)}
        if k := self._servers.get("kafka"):
            info |= {"kafka_bootstrap": k.bootstrap, "kafka_cluster_id": k.cluster_id}
            info |= {"kafka_proxied_upstream": k.proxied_upstream, "kafka_proxied_bootstrap": k.proxied_bootstrap}
            info |= {"kafka_sasl_bootstrap": k.sasl_bootstrap, "kafka_ca_file": str(k.ca_file)}
            info |= {f"kafka_user_{user}": password for user, password in k.users.items()}
        if s := self._servers.get("s3"):
            info |= {"s3_endpoint": s.endpoint, "s3_access_key": s.access_key, "s3_secret_key": s.secret_key}
            info |= {"s3_bucket": s.bucket, "s3_region": s.region}
        if s := self._servers.get("s3tls"):
            info |= {"s3tls_endpoint": s.endpoint, "s3tls_ca_file": str(s.ca_file)}
            info |= {"s3tls_access_key": s.access_key, "s3tls_secret_key": s.secret_key}
        if g := self._servers.get("gcs"):
            info |= {"gcs_endpoint": g.endpoint, "gcs_bucket": g.bucket, "gcs_project": g.project}
        if kube_server := self._servers.get("kube"):
            info |= {"kubeconfig": str(kube_server.kubeconfig), "kube_server": kube_server.server}
        if pg := self._servers.get("postgres"):
            info |= {"postgres_url": pg.url, "postgres_host": pg.host, "postgres_port": pg.port}
            info |= {"postgres_user": pg.user, "postgres_password": pg.password, "postgres_database": pg.database}
        if t := self._servers.get("toxiproxy"):
            info["toxiproxy_api"] = t.api
        info["processes"] = [{"name": p.name, "pid": p.pid, "log": str(p.log)} for p in self.processes()]
        return info
