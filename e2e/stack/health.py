"""What Argo CD and kstatus make of Kubernetes objects, computed by their own code: the small Go program in
``healthcheck/`` runs Argo CD's Lua health scripts with gopher-lua, the interpreter Argo CD embeds, set up as Argo
CD sets it up, and asks sigs.k8s.io/cli-utils' kstatus (what Flux and ``kubectl wait`` use) for its status.

gopher-lua rather than a Lua from PyPI or Debian: it is the interpreter Argo CD runs, so a script that uses
something Argo CD does not offer (the string library, Lua 5.2+ syntax) fails here as it would there.

The program is built from its ``go.mod``/``go.sum`` (modules from the Go module proxy) into the user-level cache,
keyed by a digest of its sources.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from e2e.stack.cache import cache_root, locked, log_for, run_step

SOURCES = Path(__file__).resolve().parent / "healthcheck"


class HealthCheckFailed(RuntimeError):
    """A health script failed on an object (a Lua error, a bad return value) or kstatus could not read it."""


@dataclass(frozen=True)
class Verdict:
    """One tool's answer for one object: Argo CD's health status or kstatus's status, and its message."""

    status: str
    message: str


@dataclass(frozen=True)
class Health:
    """Argo CD's health (None when no script names the object's kind) and kstatus's status of one object."""

    argocd: Verdict | None
    kstatus: Verdict


def healthcheck() -> Path:
    """The built ``healthcheck`` program (built on first use)."""
    files = sorted(p for p in SOURCES.iterdir() if p.name in ("go.mod", "go.sum") or p.suffix == ".go")
    digest = hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()[:12]
    target = cache_root() / "bin" / f"healthcheck-{digest}" / "healthcheck"
    if target.exists():
        return target
    with locked("healthcheck"):
        if not target.exists():
            log = log_for("healthcheck")
            log.write_text("")
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_suffix(".partial")
            env = {"CGO_ENABLED": "0", "GOWORK": "off", "GOFLAGS": "-mod=readonly"}
            command = ["go", "build", "-ldflags=-s -w", "-o", str(partial), "."]
            run_step(command, cwd=SOURCES, log=log, what="healthcheck", env=env)
            partial.rename(target)
    return target


def _verdict(found: Mapping, what: str) -> Verdict:
    if "error" in found:
        raise HealthCheckFailed(f"{what}: {found['error']}")
    return Verdict(found["status"], found.get("message", ""))


def evaluate(objects: Iterable[Mapping], scripts: Mapping[str, Path]) -> list[Health]:
    """Argo CD's and kstatus's verdict on each object; ``scripts`` maps ``GROUP/KIND`` to a health script.

    Raises HealthCheckFailed naming the object when a script or kstatus fails on it.
    """
    listed = list(objects)
    args = [str(healthcheck())]
    for kind, path in scripts.items():
        args += ["-lua", f"{kind}={path}"]
    done = subprocess.run(args, input="".join(json.dumps(o) + "\n" for o in listed), capture_output=True, text=True)
    if done.returncode != 0:
        raise HealthCheckFailed(done.stderr.strip() or f"healthcheck exited with {done.returncode}")
    results = []
    for body, line in zip(listed, done.stdout.splitlines(), strict=True):
        name = f"{body.get('kind')} {body.get('metadata', {}).get('name')}"
        found = json.loads(line)
        argocd = found["argocd"] and _verdict(found["argocd"], f"Argo CD's health script on {name}")
        results.append(Health(argocd, _verdict(found["kstatus"], f"kstatus on {name}")))
    return results
