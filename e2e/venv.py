"""Create (once) the virtual environment that ``make demo``, ``make test`` and ``make lint`` run in, and print its
path; or, as ``python3 e2e/venv.py lock [--upgrade]`` (``make lock``), update the lock it installs from.

The environment holds exactly the versions pinned, with their hashes, in ``requirements.lock``: the project's
dependencies and its ``dev`` and ``sql`` extras, resolved for Python 3.11 on Linux x86_64. It lives in the
user-level cache, keyed by a digest of the Python version and the lock, so every fresh clone with the same lock
reuses it without a download and a changed lock makes a new one. It holds the dependencies only; the Makefile
puts the clone itself on ``PYTHONPATH``.

The lock records a digest of pyproject.toml's requirement lists; when they change, this refuses to install until
``make lock`` has been run. The lock tool (uv, pinned below) is installed into the cache on first use.
Standard library only: this runs before any dependency is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
RUNTIME_LOCK = ROOT / "requirements-runtime.lock"  # the dependencies and the iceberg extra, for the container image
UV_VERSION = "0.13.9"
LOCK_PYTHON = "3.11"
LOCK_PLATFORM = "x86_64-unknown-linux-gnu"
STAMP = "# pyproject.toml requirements digest: "


class Failed(Exception):
    """A step failed; the message is the one line to show."""


def cache() -> Path:
    """The user-level cache folder (``$PYROSTORE_CACHE``, else ``~/.cache/pyrostore``)."""
    return Path(os.environ.get("PYROSTORE_CACHE", Path.home() / ".cache" / "pyrostore"))


def requirements() -> list[str]:
    """Every requirement of the project, its ``dev`` and ``sql`` extras included."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return sorted({*project["dependencies"], *extras.get("dev", []), *extras.get("sql", [])})


def requirements_digest() -> str:
    """The SHA-256 of pyproject.toml's requirement lists, as the lock records it."""
    return hashlib.sha256(json.dumps(requirements()).encode()).hexdigest()


def check_lock() -> bytes:
    """The lock's bytes, once it is known to be made from pyproject.toml's current requirements."""
    if not LOCK.exists():
        raise Failed(f"{LOCK.name} is missing: run `make lock`")
    data = LOCK.read_bytes()
    first = data.split(b"\n", 1)[0].decode()
    if first != STAMP + requirements_digest():
        raise Failed(f"{LOCK.name} was made for other requirements than pyproject.toml lists: run `make lock`")
    return data


def venv_path(lock: bytes) -> Path:
    """The cached environment's folder for this lock and this interpreter."""
    key = json.dumps([sys.version_info[:2], hashlib.sha256(lock).hexdigest()]).encode()
    return cache() / "venv" / hashlib.sha256(key).hexdigest()[:16]


def pip_install_command(python: Path | str) -> list[str]:
    """The pip command that installs the lock into the environment of ``python``."""
    # Hashes pin every file; wheels only, so that no build pulls in unpinned build dependencies.
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q", "install"]
    return [*pip, "--require-hashes", "--only-binary=:all:", "-r", str(LOCK)]


def ensure() -> Path:
    """Create and fill the environment unless a complete one exists; return its folder."""
    path = venv_path(check_lock())
    if (path / ".complete").exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, stdout=sys.stderr)
    result = subprocess.run(pip_install_command(path / "bin" / "python"), stdout=sys.stderr)
    if result.returncode != 0:
        raise Failed(f"installing {LOCK.name} into {path} failed (pip exit {result.returncode}, its messages above)")
    (path / ".complete").touch()
    return path


def uv() -> Path:
    """The pinned uv, installed into the cache the first time."""
    tool = cache() / "tools" / f"uv-{UV_VERSION}"
    if not (tool / ".complete").exists():
        shutil.rmtree(tool, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(tool)], check=True, stdout=sys.stderr)
        pip = [str(tool / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q", "install"]
        if subprocess.run([*pip, f"uv=={UV_VERSION}"], stdout=sys.stderr).returncode != 0:
            raise Failed(f"installing uv {UV_VERSION} into {tool} failed (pip's messages above)")
        (tool / ".complete").touch()
    return tool / "bin" / "uv"


def lock(upgrade: bool) -> None:
    """Resolve pyproject.toml's requirements into the locks (with the extras, and the dependencies alone): pins
    already there are kept while they still fit, unless ``upgrade``, which takes the newest release of everything
    within the ranges."""
    # The image runs the operator's Iceberg sync pods (and reads tables for status): the iceberg extra.
    for path, extras in ((LOCK, ["--extra", "dev", "--extra", "sql"]), (RUNTIME_LOCK, ["--extra", "iceberg"])):
        command = [str(uv()), "pip", "compile", "--no-config", "--quiet", "--cache-dir", str(cache() / "uv")]
        command += ["pyproject.toml", *extras, "--generate-hashes"]
        command += ["--python-version", LOCK_PYTHON, "--python-platform", LOCK_PLATFORM]
        command += ["--custom-compile-command", "make lock", "--output-file", path.name]
        if upgrade:
            command.append("--upgrade")
        if subprocess.run(command, cwd=ROOT, stdout=sys.stderr).returncode != 0:
            raise Failed(f"uv could not resolve pyproject.toml's requirements into {path.name} (its messages above)")
        path.write_text(f"{STAMP}{requirements_digest()}\n{path.read_text()}")  # uv rewrites its header


def main() -> None:
    """Print the environment's path (creating it if needed), or update the lock."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    locking = sub.add_parser("lock", help=f"update {LOCK.name} from pyproject.toml")
    locking.add_argument("--upgrade", action="store_true", help="newest releases within the ranges, for every pin")
    args = parser.parse_args()
    try:
        if args.command == "lock":
            lock(args.upgrade)
        else:
            print(ensure())
    except Failed as error:
        print(f"e2e/venv.py: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
