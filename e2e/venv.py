"""Create (once) the virtual environment that ``make demo`` and ``make test`` run in, and print its path.

The environment lives in the user-level cache, keyed by a digest of the Python version and the dependency
lists in pyproject.toml, so every fresh clone with the same dependencies reuses it without a download. It holds
the dependencies only; the Makefile puts the clone itself on ``PYTHONPATH``.
Standard library only: this runs before any dependency is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def requirements() -> list[str]:
    """Every requirement of the project, its ``dev`` and ``sql`` extras included."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return sorted({*project["dependencies"], *extras.get("dev", []), *extras.get("sql", [])})


def venv_path(reqs: list[str]) -> Path:
    """The cached environment's folder for these requirements and this interpreter."""
    key = json.dumps([sys.version_info[:2], reqs]).encode()
    cache = Path(os.environ.get("PYROSTORE_CACHE", Path.home() / ".cache" / "pyrostore"))
    return cache / "venv" / hashlib.sha256(key).hexdigest()[:16]


def ensure() -> Path:
    """Create and fill the environment unless a complete one exists; return its folder."""
    reqs = requirements()
    path = venv_path(reqs)
    if (path / ".complete").exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    pip = [str(path / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", *reqs], check=True, stdout=sys.stderr)
    (path / ".complete").touch()
    return path


if __name__ == "__main__":
    print(ensure())
