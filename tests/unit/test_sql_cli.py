"""``pyrostore sql`` with bad input or a failing query: one line on stderr naming the problem, the right exit code,
no traceback. Runs the real command in a child process over a folder archive."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from pyrostore.archive import Archive
from pyrostore.sql import segment_urls
from pyrostore.store import open_store
from tests.helpers import build_partition

USAGE, RUNTIME = 2, 1
S3_KEYS = ("-o", "access_key_id=a", "-o", "secret_access_key=b", "-o", "endpoint_url=http://127.0.0.1:1")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small archive of topic ``orders`` (two partitions) in a local folder."""
    url = str(tmp_path_factory.mktemp("sql-cli") / "archive")
    build_partition(open_store(url), "orders", 0, segments=2)
    build_partition(open_store(url), "orders", 1, segments=1)
    return url


def pyrostore(*args: str, prelude: str = "") -> subprocess.CompletedProcess:
    """``python -m pyrostore ARGS``, after running ``prelude`` in the child."""
    code = f"{prelude}\nimport sys\nfrom pyrostore.cli import main\nsys.argv = ['pyrostore', *{list(args)!r}]\nmain()"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


CASES = [
    ("syntax-error", ["{a}", "SELEC 1"], USAGE, ["SQL:", "syntax error", "SELEC"]),
    ("unknown-view", ["{a}", "SELECT * FROM payments"], USAGE, ["payments"]),
    ("unknown-column", ["{a}", "SELECT colour FROM orders"], USAGE, ["colour"]),
    ("parquet-to-stdout", ["{a}", "SELECT 1", "--format", "parquet"], USAGE, ["--output"]),
    ("bad-format", ["{a}", "SELECT 1", "--format", "xml"], USAGE, ["--format", "'xml'"]),
    ("bad-as-of", ["{a}", "SELECT 1", "--as-of", "last week"], USAGE, ["--as-of", "'last week'"]),
    ("bad-as-of-topic", ["{a}", "SELECT 1", "--as-of", "a b/0@1"], USAGE, ["'a b'"]),
    ("missing-commit", ["{a}", "SELECT 1", "--as-of", "orders/0@99"], RUNTIME, ["orders/0@99"]),
    ("failing-cast", ["{a}", "SELECT CAST(value AS INTEGER) FROM orders"], RUNTIME, ["SQL:", "Conversion Error"]),
    ("missing-folder", ["{tmp}/missing", "SELECT 1"], RUNTIME, ["missing"]),
    ("bad-store-option", ["{a}", "SELECT 1", "-o", "colour=blue"], USAGE, ["unknown option 'colour'"]),
    ("unreachable-s3", ["s3://bucket/p", "SELECT 1", *S3_KEYS], RUNTIME, ["s3://bucket/p", "127.0.0.1:1"]),
]


def _one_error_line(result: subprocess.CompletedProcess, code: int) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return lines[0]


@pytest.mark.parametrize(("args", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_the_right_exit_code(archive, tmp_path, args, code, words):
    started = time.monotonic()
    result = pyrostore("sql", *(arg.format(a=archive, tmp=tmp_path) for arg in args))
    line = _one_error_line(result, code)
    for word in words:
        assert word in line
    assert time.monotonic() - started < 20


def test_without_duckdb_the_line_says_how_to_install_it(archive):
    result = pyrostore("sql", archive, "SELECT 1", prelude="import sys\nsys.modules['duckdb'] = None")
    assert "pip install 'pyrostore[sql]'" in _one_error_line(result, USAGE)


def test_a_missing_committed_segment_fails_the_query_naming_it(tmp_path):
    url = str(tmp_path / "archive")
    build_partition(open_store(url), "orders", 0, segments=2)
    gone = segment_urls(Archive(open_store(url)), "orders")[1]
    os.remove(gone)
    line = _one_error_line(pyrostore("sql", url, "SELECT count(*) FROM orders"), RUNTIME)
    assert os.path.basename(gone) in line


def test_a_good_query_prints_its_rows(archive, tmp_path):
    result = pyrostore(
        "sql", archive, 'SELECT "partition", count(*) AS n FROM orders GROUP BY 1 ORDER BY 1', "--format", "jsonl"
    )
    assert result.returncode == 0, result.stderr
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        {"partition": 0, "n": 20},
        {"partition": 1, "n": 10},
    ]
    target = tmp_path / "out.csv"
    result = pyrostore("sql", archive, "SELECT count(*) AS n FROM orders", "--format", "csv", "--output", str(target))
    assert result.returncode == 0 and result.stdout == ""
    assert target.read_text().splitlines() == ['"n"', "30"]
