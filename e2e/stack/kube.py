"""A Kubernetes control plane without nodes: etcd, kube-apiserver and kube-controller-manager, built from Go
modules by ``builds``.

The controller manager brings the garbage collector (owned objects go with their owner), the Deployment,
ReplicaSet and Job controllers and namespace deletion. There is no scheduler and no kubelet: Pods are created
but never run, so tests run a pod's command themselves and report its end as a kubelet would.
"""

from __future__ import annotations

import json
import secrets
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

from e2e.stack import builds
from e2e.stack.process import Process, ServerFailed, free_port, spawn, wait_ready


@dataclass
class KubeServer:
    """A running API server: its URL, an admin token and a kubeconfig that uses it."""

    server: str
    token: str
    kubeconfig: Path
    ca_file: Path
    etcd: Process
    process: Process
    controller_manager: Process | None = None

    def api_client(self):  # -> kubernetes.client.ApiClient
        """A ``kubernetes`` client configured from the stack's kubeconfig (admin)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))


def start(workdir: Path) -> KubeServer:
    """Start etcd and kube-apiserver in ``workdir``; return once ``/readyz`` answers ok."""
    workdir.mkdir(parents=True, exist_ok=True)
    etcd_proc, etcd_url = _start_etcd(workdir / "etcd")
    try:
        server = _start_apiserver(workdir / "apiserver", etcd_proc, etcd_url)
    except BaseException:
        etcd_proc.stop()
        raise
    try:
        server.controller_manager = _start_controller_manager(workdir / "controller-manager", server)
    except BaseException:
        server.process.stop()
        etcd_proc.stop()
        raise
    return server


def _start_etcd(workdir: Path) -> tuple[Process, str]:
    binary = builds.etcd()
    client_port, peer_port = free_port(), free_port()
    client_url, peer_url = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    cmd = [str(binary), "--name", "default", "--data-dir", str(workdir / "data"), "--unsafe-no-fsync"]
    cmd += ["--listen-client-urls", client_url, "--advertise-client-urls", client_url]
    cmd += ["--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url]
    cmd += ["--initial-cluster", f"default={peer_url}", "--log-level", "warn"]
    workdir.mkdir(parents=True, exist_ok=True)
    proc = spawn("etcd", cmd, workdir / "etcd.log")
    wait_ready(proc, lambda: json.load(urllib.request.urlopen(f"{client_url}/health", timeout=2))["health"] == "true")
    return proc, client_url


def _start_apiserver(workdir: Path, etcd_proc: Process, etcd_url: str) -> KubeServer:
    binary = builds.kube_apiserver()
    workdir.mkdir(parents=True, exist_ok=True)
    certs = workdir / "certs"
    certs.mkdir(exist_ok=True)
    sa_key, sa_pub = workdir / "sa.key", workdir / "sa.pub"
    _make_rsa_key(sa_key, sa_pub, workdir / "openssl.log")
    token = secrets.token_hex(24)
    tokens = workdir / "tokens.csv"
    tokens.write_text(f'{token},admin,admin,"system:masters"\n')
    tokens.chmod(0o600)
    port = free_port()
    cmd = [str(binary), f"--etcd-servers={etcd_url}", f"--cert-dir={certs}", f"--secure-port={port}"]
    cmd += ["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"]
    cmd += ["--service-cluster-ip-range=10.0.0.0/24", "--allow-privileged=true", "--authorization-mode=RBAC"]
    cmd += ["--service-account-issuer=https://kubernetes.default.svc.cluster.local"]
    cmd += [f"--service-account-key-file={sa_pub}", f"--service-account-signing-key-file={sa_key}"]
    cmd += [f"--token-auth-file={tokens}", "--disable-admission-plugins=ServiceAccount", "--v=1"]
    proc = spawn("kube-apiserver", cmd, workdir / "kube-apiserver.log")
    server = f"https://127.0.0.1:{port}"
    ca_file = certs / "apiserver.crt"
    wait_ready(proc, lambda: _ready(server, token, ca_file), timeout=120)
    kubeconfig = workdir / "kubeconfig"
    write_user_kubeconfig(kubeconfig, server, ca_file, token)
    return KubeServer(server, token, kubeconfig, ca_file, etcd_proc, proc)


def _start_controller_manager(workdir: Path, server: KubeServer) -> Process:
    """kube-controller-manager with the admin kubeconfig; ready once it made the default ServiceAccount."""
    binary = builds.kube_controller_manager()
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [str(binary), f"--kubeconfig={server.kubeconfig}", "--leader-elect=false", "--secure-port=0"]
    cmd += [f"--root-ca-file={server.ca_file}", "--use-service-account-credentials=false", "--v=1"]
    proc = spawn("kube-controller-manager", cmd, workdir / "kube-controller-manager.log")
    wait_ready(proc, lambda: _has_default_service_account(server), timeout=120)
    return proc


def _has_default_service_account(server: KubeServer) -> bool:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    url = f"{server.server}/api/v1/namespaces/default/serviceaccounts/default"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {server.token}"})
    with urllib.request.urlopen(request, timeout=3, context=context) as response:
        return response.status == 200


def _make_rsa_key(private: Path, public: Path, log: Path) -> None:
    with open(log, "w") as out:
        for cmd in (
            ["openssl", "genrsa", "-out", str(private), "2048"],
            ["openssl", "rsa", "-in", str(private), "-pubout", "-out", str(public)],
        ):
            if subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                raise ServerFailed(f"kube-apiserver: making its service-account key failed; log {log}")


def _ready(server: str, token: str, ca_file: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca_file))
    request = urllib.request.Request(f"{server}/readyz", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=3, context=context) as response:
        return response.status == 200


def write_user_kubeconfig(path: Path, server: str, ca_file: Path, token: str, user: str = "admin") -> Path:
    """Write a kubeconfig that reaches ``server`` with a bearer ``token`` (admin's or a ServiceAccount's)."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "stack", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "stack", "context": {"cluster": "stack", "user": user, "namespace": "default"}}],
        "current-context": "stack",
    }
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    return path
