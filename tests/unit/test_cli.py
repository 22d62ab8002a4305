"""The ``pyrostore`` command on a local archive: ls, cat, verify, gc, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

from pyrostore.layout import ROOT_PREFIX
from pyrostore.store import open_store
from tests.helpers import build_partition, record


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyrostore", *args], capture_output=True, text=True, timeout=120)


def test_ls_cat_verify_gc(tmp_path):
    url = str(tmp_path / "archive")
    store = open_store(url)
    build_partition(store, "orders", 0, segments=3)
    build_partition(store, "orders", 1, segments=2)

    listing = run("ls", url)
    assert listing.returncode == 0
    assert "orders" in listing.stdout and "30" in listing.stdout and "20" in listing.stdout

    text = run("cat", url, "orders", "-p", "0", "--from-offset", "5", "-n", "2")
    assert text.stdout.splitlines() == [
        f"orders [0] @ {o} ts={record(o)[1]}: key {record(o)[3].decode()}: {record(o)[4].decode()}" for o in (5, 6)
    ]
    lines = run("cat", url, "orders", "--from-time", str(record(15)[1]), "--format", "jsonl").stdout.splitlines()
    docs = [json.loads(line) for line in lines]
    assert [(d["partition"], d["offset"]) for d in docs] == [(0, o) for o in range(15, 30)] + [
        (1, o) for o in range(15, 20)
    ]
    assert docs[0]["headers"] == [{"key": "n", "value": "15"}]

    assert run("verify", url).returncode == 0
    assert "0 object(s)" in run("gc", url, "--grace", "0s").stdout


def test_verify_fails_on_damage_with_a_report(tmp_path):
    url = str(tmp_path / "archive")
    store = open_store(url)
    build_partition(store, "orders", 0, segments=2)
    key = next(i.key for i in store.list(f"{ROOT_PREFIX}data/"))
    store.put(key, store.get(key)[:-1] + b"!")
    result = run("verify", url)
    assert result.returncode == 1
    assert key.rsplit("/", 1)[-1] in result.stdout
    assert "1 problem(s) found" in result.stdout
