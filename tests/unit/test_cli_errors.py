"""Bad input to the ``pyrostore`` command: one line on stderr naming the problem, the right exit code, no
traceback, and an unreachable store reported within 20 seconds. Runs the real command in a child process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyrostore.store import open_store
from tests.helpers import build_partition

CLOSED = "http://127.0.0.1:1"  # nothing listens on port 1: connections are refused at once
S3_KEYS = ("-o", "access_key_id=a", "-o", "secret_access_key=b", "-o", f"endpoint_url={CLOSED}")
USAGE, RUNTIME = 2, 1


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small archive of topic ``orders`` in a local folder."""
    url = str(tmp_path_factory.mktemp("cli") / "archive")
    build_partition(open_store(url), "orders", 0, segments=2)
    return url


# (case id, arguments with {a} for the archive and {tmp} for a fresh folder, exit code, words the line names)
CASES = [
    ("topic-with-slash", ["cat", "{a}", "bad/topic"], USAGE, ["'bad/topic'", "topic name"]),
    ("topic-too-long", ["cat", "{a}", "t" * 250], USAGE, ["topic name"]),
    ("verify-bad-topic", ["verify", "{a}", ".."], USAGE, ["'..'", "topic name"]),
    ("archive-bad-topic", ["archive", "-b", "k:9092", "-t", "a b", "--store", "{tmp}"], USAGE, ["'a b'"]),
    ("unknown-scheme", ["ls", "s3x://bucket/p"], USAGE, ["unknown scheme", "'s3x'"]),
    ("url-with-credentials", ["ls", "s3://user:pw@bucket/p"], USAGE, ["credentials"]),
    ("url-without-bucket", ["ls", "gs:///p"], USAGE, ["names no bucket"]),
    ("url-with-query", ["ls", "s3://bucket/p?region=x"], USAGE, ["query"]),
    ("relative-file-url", ["ls", "file:relative/dir"], USAGE, ["absolute path"]),
    ("unknown-store-option", ["ls", "{a}", "-o", "colour=blue"], USAGE, ["unknown option 'colour'"]),
    ("store-option-not-a-pair", ["ls", "{a}", "-o", "colour"], USAGE, ["--store-option", "'colour'"]),
    ("store-option-not-a-number", ["ls", "s3://b/p", "-o", "retry_deadline=soon"], USAGE, ["retry_deadline"]),
    ("unknown-command-option", ["ls", "{a}", "--colour"], USAGE, ["--colour"]),
    ("unknown-command", ["list", "{a}"], USAGE, ["'list'"]),
    ("missing-argument", ["cat", "{a}"], USAGE, ["Missing argument"]),
    ("bad-output-format", ["cat", "{a}", "orders", "--format", "xml"], USAGE, ["--format", "'xml'"]),
    ("bad-log-format", ["archive", "-b", "k:1", "-t", "t", "--store", "{tmp}", "--log-format", "jsn"], USAGE, ["jsn"]),
    (
        "bad-partitioning",
        ["replay", "--store", "{a}", "-t", "orders", "--to-topic", "x", "-b", "k:1", "--partitioning", "random"],
        USAGE,
        ["--partitioning", "'random'"],
    ),
    ("bad-from-time", ["cat", "{a}", "orders", "--from-time", "yesterday"], USAGE, ["--from-time", "'yesterday'"]),
    (
        "bad-to-time",
        ["replay", "--store", "{a}", "-t", "orders", "--to-topic", "x", "-b", "k:1", "--to-time", "2026-13-45"],
        USAGE,
        ["--to-time"],
    ),
    ("negative-ms-time", ["cat", "{a}", "orders", "--from-time", "-5"], USAGE, ["--from-time", "before 1970"]),
    ("negative-offset", ["cat", "{a}", "orders", "--from-offset", "-5"], USAGE, ["--from-offset"]),
    ("negative-partition", ["cat", "{a}", "orders", "-p", "-1"], USAGE, ["--partition"]),
    (
        "negative-replay-offset",
        ["replay", "--store", "{a}", "-t", "orders", "--to-topic", "x", "-b", "k:1", "--from-offset", "-1"],
        USAGE,
        ["--from-offset"],
    ),
    ("both-start-bounds", ["cat", "{a}", "orders", "--from-offset", "1", "--from-time", "5"], USAGE, ["not both"]),
    (
        "bad-partition-list",
        ["replay", "--store", "{a}", "-t", "orders", "--to-topic", "x", "-b", "k:1", "--partitions", "0,x"],
        USAGE,
        ["--partitions", "'0,x'"],
    ),
    ("bad-duration", ["gc", "{a}", "--grace", "3 weeks"], USAGE, ["--grace", "'3 weeks'"]),
    (
        "bad-size",
        ["archive", "-b", "k:1", "-t", "t", "--store", "{tmp}", "--segment-bytes", "lots"],
        USAGE,
        ["--segment-bytes", "'lots'"],
    ),
    (
        "forbidden-kafka-property",
        ["archive", "-b", "k:1", "-t", "t", "--store", "{tmp}", "-X", "isolation.level=read_uncommitted"],
        USAGE,
        ["isolation.level"],
    ),
    (
        "missing-properties-file",
        ["archive", "-b", "k:1", "-t", "t", "--store", "{tmp}", "--kafka-properties", "{tmp}/none.properties"],
        USAGE,
        ["none.properties"],
    ),
    ("missing-archive-folder", ["ls", "{tmp}/missing"], RUNTIME, ["missing"]),
    ("topic-not-archived", ["cat", "{a}", "payments"], RUNTIME, ["'payments'"]),
    ("partition-not-archived", ["cat", "{a}", "orders", "-p", "7"], RUNTIME, ["orders/7"]),
    ("file-store-under-a-file", ["ls", "/etc/hostname/archive"], RUNTIME, ["/etc/hostname"]),
    ("unreachable-s3", ["ls", "s3://bucket/p", *S3_KEYS], RUNTIME, ["s3://bucket/p", "127.0.0.1:1"]),
    ("unreachable-gcs", ["ls", "gs://bucket/p", "-o", f"endpoint_url={CLOSED}"], RUNTIME, ["gs://bucket/p"]),
    ("unreachable-s3-cat", ["cat", "s3://bucket/p", "orders", *S3_KEYS], RUNTIME, ["s3://bucket/p"]),
    ("unreachable-gcs-verify", ["verify", "gs://bucket/p", "-o", f"endpoint_url={CLOSED}"], RUNTIME, ["gs://"]),
]


@pytest.mark.parametrize(("args", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_the_right_exit_code_and_no_traceback(archive, tmp_path, args, code, words):
    argv = [arg.format(a=archive, tmp=tmp_path) for arg in args]
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pyrostore", *argv], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    took = time.monotonic() - started
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]
    assert took < 20, f"took {took:.1f}s to report: {lines[0]}"
    assert result.stdout == ""


def test_bad_input_never_changes_the_archive(archive):
    """The archive's objects are the same after every bad command above ran against it."""
    before = sorted((info.key, info.size) for info in open_store(archive).list(""))
    for args in (["cat", archive, "bad/topic"], ["gc", archive, "--grace", "x"], ["verify", archive, ".."]):
        subprocess.run([sys.executable, "-m", "pyrostore", *args], capture_output=True, timeout=60)
    assert sorted((info.key, info.size) for info in open_store(archive).list("")) == before
    assert Path(archive).is_dir()
