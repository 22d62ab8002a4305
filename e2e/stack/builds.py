"""Fetch and build the stack's servers once, into a user-level cache keyed by version.

Every server is built from a package registry (Go module proxy, Maven Central, PyPI), never from a prebuilt
download. Results land in ``$PYROSTORE_CACHE`` (default ``~/.cache/pyrostore``) so that a fresh clone reuses
them; Go's own module and build caches stay at their user-level defaults.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.5.35"
# MinIO publishes RELEASE.* tags, which are not Go module versions; this pins one commit.
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
FAKE_GCS_VERSION = "v1.56.1"
KAFKA_VERSION = "4.3.1"
LOG4J_VERSION = "2.24.3"
HELM_VERSION = "v3.21.4"
KUBECONFORM_VERSION = "v0.6.7"


class BuildError(RuntimeError):
    """A server could not be fetched or built; the message names it and the log to read."""


def cache_root() -> Path:
    """The user-level cache folder shared by every clone."""
    root = Path(os.environ.get("PYROSTORE_CACHE", Path.home() / ".cache" / "pyrostore"))
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def _locked(name: str) -> Iterator[None]:
    """Serialise builds of one artifact across processes (parallel test runs, demo and tests)."""
    lock_dir = cache_root() / "locks"
    lock_dir.mkdir(exist_ok=True)
    with open(lock_dir / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(cmd: list[str], *, cwd: Path, log: Path, what: str, env: dict[str, str] | None = None) -> str:
    """Run one build step, appending its output to ``log``; raise BuildError naming ``what`` on failure."""
    full_env = {**os.environ, **(env or {})}
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=out, text=True)
        out.write(proc.stdout)
    if proc.returncode != 0:
        raise BuildError(f"building {what} failed at `{' '.join(cmd[:4])}`; see {log}")
    return proc.stdout


def _installed(artifact: Path) -> bool:
    return artifact.exists() and os.access(artifact, os.X_OK)


def _log_for(name: str) -> Path:
    logs = cache_root() / "logs"
    logs.mkdir(exist_ok=True)
    return logs / f"build-{name}.log"


def _local_replaces(module: str, version: str, work: Path, log: Path) -> list[str]:
    """Replace lines pinning each module that ``module``'s go.mod replaces with a relative path.

    Such a module (Kubernetes' staging repos, etcd's siblings) cannot be built as a dependency unless each
    relative replace is turned into a registry version: the version it requires, or for Kubernetes' v0.0.0
    placeholders the v0.MINOR.PATCH that matches the main module's v1.MINOR.PATCH.
    """
    info = json.loads(_run(["go", "mod", "download", "-json", f"{module}@{version}"], cwd=work, log=log, what=module))
    gomod = Path(info["GoMod"]).read_text()
    required = dict(re.findall(r"^\s*(\S+)\s+(v\S+)", gomod, flags=re.M))
    lines = []
    for path in re.findall(r"^\s*(\S+)\s+=>\s+\.\.?/(?!FORBIDDEN)\S+", gomod, flags=re.M):
        pinned = required.get(path, "v0.0.0")
        if pinned == "v0.0.0":
            pinned = "v0." + version.split(".", 1)[1]
        lines.append(f"replace {path} => {path} {pinned}")
    return lines


def _go_build(name: str, module: str, version: str, package: str, ldflags: str = "") -> Path:
    """Build ``package`` of ``module@version`` through a wrapper module; return the cached binary."""
    target = cache_root() / "bin" / f"{name}-{version}" / name
    if _installed(target):
        return target
    with _locked(name):
        if _installed(target):
            return target
        log = _log_for(name)
        log.write_text("")
        with tempfile.TemporaryDirectory(prefix=f"build-{name}-") as tmp:
            work = Path(tmp)
            replaces = _local_replaces(module, version, work, log)
            (work / "go.mod").write_text(
                f"module pyrostore.local/build/{name}\n\ngo 1.24\n\nrequire {module} {version}\n\n"
                + "\n".join(replaces)
                + "\n"
            )
            env = {"GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
            _run(["go", "mod", "download", module], cwd=work, log=log, what=name, env=env)
            tmp_out = target.with_suffix(".partial")
            target.parent.mkdir(parents=True, exist_ok=True)
            flags = f"-s -w {ldflags}".strip()
            _run(
                ["go", "build", "-o", str(tmp_out), f"-ldflags={flags}", package],
                cwd=work,
                log=log,
                what=name,
                env=env,
            )
            tmp_out.rename(target)
    return target


def _go_install(name: str, module: str, version: str) -> Path:
    """``go install module@version`` into the cache (for modules without replace lines)."""
    target = cache_root() / "bin" / f"{name}-{version}" / name
    if _installed(target):
        return target
    with _locked(name):
        if _installed(target):
            return target
        log = _log_for(name)
        log.write_text("")
        staging = target.parent / "partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        _run(
            ["go", "install", "-ldflags=-s -w", f"{module}@{version}"],
            cwd=staging,
            log=log,
            what=name,
            env={"GOBIN": str(staging), "CGO_ENABLED": "0"},
        )
        built = staging / module.rstrip("/").split("/")[-1]
        built.rename(target)
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _kubernetes_command(name: str) -> Path:
    """One command of k8s.io/kubernetes (``cmd/<name>``), with one replace per staging module."""
    minor = KUBERNETES_VERSION.split(".")[1]
    stamp = "k8s.io/component-base/version"
    return _go_build(
        name,
        "k8s.io/kubernetes",
        KUBERNETES_VERSION,
        f"k8s.io/kubernetes/cmd/{name}",
        ldflags=f"-X {stamp}.gitVersion={KUBERNETES_VERSION} -X {stamp}.gitMajor=1 -X {stamp}.gitMinor={minor}",
    )


def kube_apiserver() -> Path:
    """kube-apiserver built from k8s.io/kubernetes."""
    return _kubernetes_command("kube-apiserver")


def kube_controller_manager() -> Path:
    """kube-controller-manager from the same module: garbage collection of owned objects, Job controller."""
    return _kubernetes_command("kube-controller-manager")


def helm() -> Path:
    """The Helm client, to lint and render the chart."""
    return _go_install("helm", "helm.sh/helm/v3/cmd/helm", HELM_VERSION)


def kubeconform() -> Path:
    """kubeconform, to validate rendered manifests against schemas."""
    return _go_install("kubeconform", "github.com/yannh/kubeconform/cmd/kubeconform", KUBECONFORM_VERSION)


def etcd() -> Path:
    """etcd built from go.etcd.io/etcd/server/v3, whose root package is the server's main."""
    return _go_build("etcd", "go.etcd.io/etcd/server/v3", ETCD_VERSION, "go.etcd.io/etcd/server/v3")


def minio() -> Path:
    """The MinIO server, ``go install``ed at a pinned commit."""
    return _go_install("minio", "github.com/minio/minio", MINIO_VERSION)


def fake_gcs_server() -> Path:
    """fake-gcs-server, the GCS emulator that honours generation preconditions."""
    return _go_install("fake-gcs-server", "github.com/fsouza/fake-gcs-server", FAKE_GCS_VERSION)


_KAFKA_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.pyrostore.local</groupId><artifactId>kafka-libs</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version></dependency>
  </dependencies>
</project>
"""


def kafka_libs() -> Path:
    """A folder of the Kafka broker's jars and their runtime dependencies, from Maven Central."""
    pom_text = _KAFKA_POM.format(kafka=KAFKA_VERSION, log4j=LOG4J_VERSION)
    pom_digest = hashlib.sha256(pom_text.encode()).hexdigest()[:8]
    target = cache_root() / "kafka" / f"kafka-{KAFKA_VERSION}-{pom_digest}" / "libs"
    done = target.parent / ".complete"
    if done.exists():
        return target
    with _locked("kafka"):
        if done.exists():
            return target
        log = _log_for("kafka")
        log.write_text("")
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        pom = target.parent / "pom.xml"
        pom.write_text(pom_text)
        _run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={target}",
            ],
            cwd=target.parent,
            log=log,
            what="Apache Kafka jars",
        )
        done.touch()
    return target


BUILDERS = {
    "kafka": kafka_libs,
    "minio": minio,
    "fake-gcs-server": fake_gcs_server,
    "etcd": etcd,
    "kube-apiserver": kube_apiserver,
    "kube-controller-manager": kube_controller_manager,
    "helm": helm,
    "kubeconform": kubeconform,
}


def main(names: list[str]) -> int:
    """Build the named artifacts (all when none are named), printing where each one is."""
    failed = 0
    for name in names or list(BUILDERS):
        try:
            print(f"{name}: {BUILDERS[name]()}", flush=True)
        except BuildError as exc:
            print(f"{name}: {exc}", file=sys.stderr, flush=True)
            failed += 1
    return 1 if failed else 0
