"""The user-level build cache shared by every clone: its folder, per-artifact locks, build logs and steps.

Results land in ``$PYROSTORE_CACHE`` (default ``~/.cache/pyrostore``), keyed by version, so that a fresh clone
reuses them; each artifact is built under a lock, so parallel test runs and the demo build it once.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class BuildError(RuntimeError):
    """A server or client could not be fetched or built; the message names it and the log to read."""


def cache_root() -> Path:
    """The user-level cache folder shared by every clone."""
    root = Path(os.environ.get("PYROSTORE_CACHE", Path.home() / ".cache" / "pyrostore"))
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def locked(name: str) -> Iterator[None]:
    """Serialise builds of one artifact across processes (parallel test runs, demo and tests)."""
    lock_dir = cache_root() / "locks"
    lock_dir.mkdir(exist_ok=True)
    with open(lock_dir / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_step(cmd: list[str], *, cwd: Path, log: Path, what: str, env: dict[str, str] | None = None) -> str:
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


def log_for(name: str) -> Path:
    """The build log of artifact ``name`` (rewritten by each build)."""
    logs = cache_root() / "logs"
    logs.mkdir(exist_ok=True)
    return logs / f"build-{name}.log"


def filled_once(name: str, folder: str, fill: Callable[[Path, Path], None]) -> Path:
    """``<cache>/<name>/<folder>``, made by ``fill(path, log)`` unless an earlier build completed it.

    A ``.complete`` file marks a finished build: a build that failed or was killed half-way is started again
    from an empty folder.
    """
    target = cache_root() / name / folder
    done = target / ".complete"
    if done.exists():
        return target
    with locked(name):
        if done.exists():
            return target
        log = log_for(name)
        log.write_text("")
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        fill(target, log)
        done.touch()
    return target


_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.pyrostore.local</groupId><artifactId>{name}</artifactId><version>1</version>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""


def maven_libs(name: str, version: str, dependencies: list[str], what: str) -> Path:
    """A folder of the jars of ``dependencies`` (``group:artifact:version``) and their runtime dependencies,
    fetched from Maven Central by ``mvn dependency:copy-dependencies`` (through ``~/.m2``) from a small pom.

    Cached under ``<cache>/<name>/<name>-<version>-<digest of the pom>/libs``."""
    entries = []
    for coordinates in dependencies:
        group, artifact, release = coordinates.split(":")
        entries.append(
            f"    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>\n"
            f"      <version>{release}</version></dependency>"
        )
    pom_text = _POM.format(name=f"{name}-libs", dependencies="\n".join(entries))
    digest = hashlib.sha256(pom_text.encode()).hexdigest()[:8]

    def fill(folder: Path, log: Path) -> None:
        pom = folder / "pom.xml"
        pom.write_text(pom_text)
        command = ["mvn", "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", "-DincludeScope=runtime"]
        run_step([*command, f"-DoutputDirectory={folder / 'libs'}"], cwd=folder, log=log, what=what)

    return filled_once(name, f"{name}-{version}-{digest}", fill) / "libs"
