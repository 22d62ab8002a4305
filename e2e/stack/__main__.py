"""``python -m e2e.stack build | up [--json] [SERVER ...] | down | status``: the stack outside of pytest.

``up`` leaves the servers running and records them in ``$PYROSTORE_STACK_DIR/state.json`` (default: a
``pyrostore-stack`` folder in the system temp folder); ``down`` stops exactly the processes recorded there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from e2e.stack import SERVERS, ServerFailed, Stack, builds
from e2e.stack.process import Process


def _stack_dir() -> Path:
    return Path(os.environ.get("PYROSTORE_STACK_DIR", Path(tempfile.gettempdir()) / "pyrostore-stack"))


def _state_file() -> Path:
    return _stack_dir() / "state.json"


def _recorded() -> dict | None:
    try:
        return json.loads(_state_file().read_text())
    except FileNotFoundError:
        return None


def up(names: list[str], as_json: bool) -> int:
    """Start the servers (all by default) and print their connection details."""
    if _recorded():
        print(f"a stack is already up (see {_state_file()}); run `down` first", file=sys.stderr)
        return 1
    workdir = _stack_dir()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    stack = Stack(workdir)
    try:
        stack.start_all(tuple(names) or SERVERS)
    except ServerFailed as exc:
        stack.stop()
        print(f"stack failed to start: {exc}", file=sys.stderr)
        return 1
    info = stack.describe()
    _state_file().write_text(json.dumps(info, indent=2))
    if as_json:
        print(json.dumps(info))
    else:
        for key, value in info.items():
            if key != "processes":
                print(f"{key:18} {value}")
        for proc in info["processes"]:
            print(f"{'process':18} {proc['name']} pid {proc['pid']} log {proc['log']}")
    return 0


def down() -> int:
    """Stop the processes recorded by ``up``."""
    info = _recorded()
    if not info:
        print("no stack is up")
        return 0
    for proc in reversed(info["processes"]):
        Process(proc["name"], proc["pid"], Path(proc["log"])).stop()
        print(f"stopped {proc['name']} (pid {proc['pid']})")
    _state_file().unlink()
    return 0


def status() -> int:
    """Print each recorded process and whether it still runs."""
    info = _recorded()
    if not info:
        print("no stack is up")
        return 1
    for key, value in info.items():
        if key != "processes":
            print(f"{key:18} {value}")
    alive = True
    for proc in info["processes"]:
        running = Process(proc["name"], proc["pid"], Path(proc["log"])).alive()
        alive &= running
        print(f"{proc['name']:18} pid {proc['pid']} {'running' if running else 'STOPPED'}  log {proc['log']}")
    return 0 if alive else 1


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one of up, down, status."""
    parser = argparse.ArgumentParser(prog="python -m e2e.stack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start the servers and leave them running")
    up_parser.add_argument("servers", nargs="*", metavar="SERVER", help=f"any of {', '.join(SERVERS)}; default: all")
    up_parser.add_argument("--json", action="store_true", help="print one JSON object")
    commands.add_parser("build", help="fetch and build every server into the user-level cache")
    commands.add_parser("down", help="stop the servers started by up")
    commands.add_parser("status", help="show the servers started by up")
    args = parser.parse_args(argv)
    if unknown := set(getattr(args, "servers", [])) - set(SERVERS):
        parser.error(f"unknown server {', '.join(sorted(unknown))}; choose from {', '.join(SERVERS)}")
    if args.command == "up":
        return up(args.servers, args.json)
    if args.command == "build":
        return builds.main([])
    return down() if args.command == "down" else status()


if __name__ == "__main__":
    sys.exit(main())
