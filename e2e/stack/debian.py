"""Programs from Debian's archive unpacked into the cache, never installed: a package and the packages it depends
on that this machine lacks, fetched with ``apt-get download`` and unpacked with ``dpkg -x``; run the program with
``LD_LIBRARY_PATH`` set to :func:`library_path`.

The set of packages is resolved from the package lists (``apt-cache``), so the cache is keyed by the exact
version of each one. ``apt-get update`` runs only when the lists do not know a package or name a file the mirror
no longer has, and only as root (CI runs as root on these machines); nothing is installed system-wide.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

from e2e.stack.cache import BuildError, filled_once, run_step

_MANIFEST = "packages.json"


def unpacked(package: str) -> Path:
    """The cache folder of ``package`` unpacked with its missing dependencies: ``root/`` holds the files (as
    under ``/``), ``debs/`` the downloaded archives and ``packages.json`` each package's version."""
    versions = _resolve(package)
    listed = ",".join(f"{name}={version}" for name, version in sorted(versions.items()))
    digest = hashlib.sha256(listed.encode()).hexdigest()[:8]

    def fill(folder: Path, log: Path) -> None:
        debs = folder / "debs"
        debs.mkdir()
        _download([f"{name}={version}" for name, version in sorted(versions.items())], debs, log, package)
        for deb in sorted(debs.glob("*.deb")):
            run_step(["dpkg", "-x", str(deb), str(folder / "root")], cwd=folder, log=log, what=package)
        (folder / _MANIFEST).write_text(json.dumps(versions, indent=2, sort_keys=True) + "\n")
        _check_linked(folder, log, package)

    return filled_once(package, f"{package}-{versions[package]}-{digest}", fill)


def packages(folder: Path) -> dict[str, str]:
    """The version of each package unpacked into ``folder`` (a result of :func:`unpacked`)."""
    return json.loads((folder / _MANIFEST).read_text())


def library_path(folder: Path) -> str:
    """``LD_LIBRARY_PATH`` for programs unpacked into ``folder``: every folder holding a shared library."""
    found = sorted({str(lib.parent) for lib in (folder / "root").rglob("*.so*")})
    return ":".join(found)


def _apt(*args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["apt-cache", *args], capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise BuildError("apt-cache is missing: Debian packages can only be fetched on Debian") from exc


def _candidates(names: list[str]) -> dict[str, str]:
    """The candidate version of each package, from ``apt-cache policy``; updates the lists once if needed."""
    for attempt in range(2):
        found = dict(
            re.findall(r"^(\S+):\n(?:\s+Installed:.*\n)?\s+Candidate: (\S+)", _apt("policy", *names).stdout, re.M)
        )
        missing = [name for name in names if found.get(name, "(none)") == "(none)"]
        if not missing:
            return found
        if attempt == 0:
            _update(f"the package lists do not offer {', '.join(missing)}")
    raise BuildError(f"Debian's package lists offer no {', '.join(missing)} even after apt-get update")


def _update(reason: str) -> None:
    if os.geteuid() != 0:
        raise BuildError(f"{reason}; run `apt-get update` as root, then build again")
    update = subprocess.run(["apt-get", "update"], capture_output=True, text=True)
    if update.returncode != 0:
        raise BuildError(f"{reason}, and apt-get update failed:\n{update.stderr[-2000:]}")


def _installed(names: list[str]) -> set[str]:
    query = ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *names]
    listed = subprocess.run(query, capture_output=True, text=True).stdout  # exits 1 naming unknown packages
    return {line.split()[0] for line in listed.splitlines() if line.endswith(" installed")}


def _dependencies(names: list[str]) -> list[list[str]]:
    """Each Depends / Pre-Depends of the packages as a list of alternatives (``a | b``)."""
    skip = ["--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances"]
    shown = _apt("depends", *skip, *names)
    if shown.returncode != 0:
        raise BuildError(f"apt-cache depends {' '.join(names)} failed: {shown.stderr.strip()}")
    groups: list[list[str]] = []
    alternative = False
    # An alternative is marked by a bar in place of the second space of the indent: " |Depends: a".
    for bar, name in re.findall(r"^ ([ |])(?:Pre)?Depends: (\S+)", shown.stdout, re.M):
        if alternative:
            groups[-1].append(name)
        else:
            groups.append([name])
        alternative = bar == "|"
    return groups


def _resolve(package: str) -> dict[str, str]:
    """``package`` and, transitively, the packages it depends on that are not installed: name -> version."""
    versions: dict[str, str] = {}
    todo = [package]
    while todo:
        versions |= _candidates(todo)
        groups = _dependencies(todo)
        present = _installed(sorted({name for group in groups for name in group})) | set(versions)
        todo = sorted({group[0] for group in groups if not present.intersection(group)})
        if virtual := [name for name in todo if name.startswith("<")]:
            raise BuildError(f"{package} needs virtual packages {', '.join(virtual)}: choose a provider by hand")
    return versions


def _download(pinned: list[str], into: Path, log: Path, what: str) -> None:
    try:
        run_step(["apt-get", "download", *pinned], cwd=into, log=log, what=what)
    except BuildError as exc:  # lists older than the mirror name files it no longer has
        _update(str(exc))
        run_step(["apt-get", "download", *pinned], cwd=into, log=log, what=what)


def _check_linked(folder: Path, log: Path, what: str) -> None:
    """Fail the build if a program unpacked into ``folder`` misses a shared library with our library path."""
    env = {"LD_LIBRARY_PATH": library_path(folder)}
    for program in sorted((folder / "root" / "usr" / "bin").glob("*")):
        linked = run_step(["ldd", str(program)], cwd=folder, log=log, what=what, env=env)
        if missing := re.findall(r"^\s*(\S+) => not found", linked, re.M):
            raise BuildError(f"{program.name} still lacks {', '.join(missing)}; see {log}")
