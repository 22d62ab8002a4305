"""Fetch and build the stack's servers and test clients once, into a user-level cache keyed by version.

Everything is built from a package registry (Go module proxy, Maven Central, Debian's archive, PyPI), never from
a prebuilt download. Results land in ``$PYROSTORE_CACHE`` (default ``~/.cache/pyrostore``, see
:mod:`e2e.stack.cache`) so that a fresh clone reuses them; Go's own module and build caches and Maven's ``~/.m2``
stay at their user-level defaults.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from e2e.stack import debian, health, spark
from e2e.stack.cache import BuildError, cache_root, locked, log_for, maven_libs, run_step

__all__ = ["BUILDERS", "BuildError", "cache_root", "main"]

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.5.35"
# MinIO publishes RELEASE.* tags, which are not Go module versions; this pins one commit.
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
FAKE_GCS_VERSION = "v1.56.1"
KAFKA_VERSION = "4.3.1"
LOG4J_VERSION = "2.24.3"
HELM_VERSION = "v3.21.4"
KUBECONFORM_VERSION = "v0.6.7"
# The Go module proxy lists only v2.3.0 and v2.5.0 of toxiproxy/v2, but serves later tags asked for by name.
TOXIPROXY_VERSION = "v2.12.0"
# Debian 12's PostgreSQL: unpacked from Debian's archive when no postgresql-<major> package is installed.
POSTGRES_MAJOR = "15"
_POSTGRES_PROGRAMS = ("initdb", "postgres", "psql")


def _installed(artifact: Path) -> bool:
    return artifact.exists() and os.access(artifact, os.X_OK)


def _local_replaces(module: str, version: str, work: Path, log: Path) -> list[str]:
    """Replace lines pinning each module that ``module``'s go.mod replaces with a relative path.

    Such a module (Kubernetes' staging repos, etcd's siblings) cannot be built as a dependency unless each
    relative replace is turned into a registry version: the version it requires, or for Kubernetes' v0.0.0
    placeholders the v0.MINOR.PATCH that matches the main module's v1.MINOR.PATCH.
    """
    info = json.loads(
        run_step(["go", "mod", "download", "-json", f"{module}@{version}"], cwd=work, log=log, what=module)
    )
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
    with locked(name):
        if _installed(target):
            return target
        log = log_for(name)
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
            run_step(["go", "mod", "download", module], cwd=work, log=log, what=name, env=env)
            tmp_out = target.with_suffix(".partial")
            target.parent.mkdir(parents=True, exist_ok=True)
            flags = f"-s -w {ldflags}".strip()
            run_step(
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
    with locked(name):
        if _installed(target):
            return target
        log = log_for(name)
        log.write_text("")
        staging = target.parent / "partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        run_step(
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


def toxiproxy() -> Path:
    """Shopify's Toxiproxy server (a TCP proxy whose faults are set over an HTTP API), ``go install``ed."""
    return _go_install("toxiproxy-server", "github.com/Shopify/toxiproxy/v2/cmd/server", TOXIPROXY_VERSION)


def kafka_libs() -> Path:
    """A folder of the Kafka broker's jars and their runtime dependencies, from Maven Central."""
    dependencies = [f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}", *_log4j_slf4j()]
    return maven_libs("kafka", KAFKA_VERSION, dependencies, "Apache Kafka jars")


def kafka_tools_libs() -> Path:
    """Kafka's command-line tools (``org.apache.kafka:kafka-tools``, with the console consumer) at the broker's
    version and their runtime dependencies, from Maven Central."""
    dependencies = [f"org.apache.kafka:kafka-tools:{KAFKA_VERSION}", *_log4j_slf4j()]
    return maven_libs("kafka-tools", KAFKA_VERSION, dependencies, "Apache Kafka tools jars")


def _log4j_slf4j() -> list[str]:
    """log4j2 behind Kafka's slf4j 1.7 logging (its ``log4j-slf4j-impl`` binding, not the slf4j2 one)."""
    return [f"org.apache.logging.log4j:{name}:{LOG4J_VERSION}" for name in ("log4j-slf4j-impl", "log4j-core")]


def kcat() -> Path:
    """Debian's ``kcat`` package with the libraries it needs that this machine lacks (``librdkafka1``, ...),
    unpacked into the cache; see :mod:`e2e.stack.debian`."""
    return debian.unpacked("kcat")


@dataclass(frozen=True)
class Programs:
    """Folders of programs, searched in order, and the environment the programs need (``LD_LIBRARY_PATH`` for
    ones unpacked from Debian)."""

    folders: tuple[Path, ...]
    env: dict[str, str] = field(default_factory=dict)

    def path(self, name: str) -> Path:
        """The program ``name`` from the first folder that has it."""
        return next((folder / name for folder in self.folders if _installed(folder / name)), self.folders[0] / name)

    def __str__(self) -> str:
        return ":".join(str(folder) for folder in self.folders)


def postgres() -> Programs:
    """PostgreSQL's programs (initdb, postgres, psql): the installed Debian packages'
    ``/usr/lib/postgresql/<major>/bin`` (the newest major), else :func:`postgres_unpacked`."""
    installed = [
        folder
        for folder in Path("/usr/lib/postgresql").glob("*/bin")
        if folder.parent.name.isdigit() and all(_installed(folder / name) for name in _POSTGRES_PROGRAMS)
    ]
    if installed:
        return Programs((max(installed, key=lambda folder: int(folder.parent.name)),))
    return postgres_unpacked()


def postgres_unpacked() -> Programs:
    """Debian's ``postgresql-<POSTGRES_MAJOR>`` (the server) and ``postgresql-client-<POSTGRES_MAJOR>`` (psql),
    each with the packages it needs that this machine lacks, unpacked into the cache (see
    :mod:`e2e.stack.debian`); PostgreSQL finds its share and lib folders relative to its bin folder."""
    unpacked = [debian.unpacked(f"{package}-{POSTGRES_MAJOR}") for package in ("postgresql", "postgresql-client")]
    folders = tuple(folder / "root" / "usr" / "lib" / "postgresql" / POSTGRES_MAJOR / "bin" for folder in unpacked)
    programs = Programs(folders, {"LD_LIBRARY_PATH": ":".join(debian.library_path(folder) for folder in unpacked)})
    if missing := [name for name in _POSTGRES_PROGRAMS if not _installed(programs.path(name))]:
        raise BuildError(f"Debian's PostgreSQL {POSTGRES_MAJOR} packages lack {', '.join(missing)} in {programs}")
    return programs


BUILDERS = {
    "kafka": kafka_libs,
    "minio": minio,
    "fake-gcs-server": fake_gcs_server,
    "toxiproxy": toxiproxy,
    "etcd": etcd,
    "kube-apiserver": kube_apiserver,
    "kube-controller-manager": kube_controller_manager,
    "kcat": kcat,
    "postgres": postgres,
    "postgres-debian": postgres_unpacked,
    "kafka-tools": kafka_tools_libs,
    "helm": helm,
    "kubeconform": kubeconform,
    "healthcheck": health.healthcheck,
    "spark": spark.runtime,
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
