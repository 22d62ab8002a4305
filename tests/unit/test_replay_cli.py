"""``pyrostore replay`` without Kafka: the dry run reads only the archive; bad options give one line."""

from __future__ import annotations

import re

from tests.replay_helpers import build_archive
from tests.unit.test_cli import run


def test_dry_run_prints_the_plan_without_touching_kafka(tmp_path):
    url = str(tmp_path / "archive")
    build_archive(url, "orders", partitions=3, records=120, per_segment=50)
    args = ("replay", "--store", url, "-t", "orders", "--to-topic", "copy", "-b", "127.0.0.1:9", "--dry-run")
    result = run(*args, "--from-offset", "10", "--parallelism", "2", "--worker-index", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "orders/1: offsets 10..119  records 110  bytes " + result.stdout.split("bytes ")[1].split()[0],
        result.stdout.splitlines()[-1],
    ]
    assert "total: 1 partition(s), 110 records" in result.stdout


def test_bad_options_give_one_line_and_no_traceback(tmp_path):
    url = str(tmp_path / "archive")
    build_archive(url, "orders", partitions=1, records=10)
    base = ("replay", "--store", url, "-t", "orders", "--to-topic", "copy", "-b", "127.0.0.1:9", "--dry-run")
    for extra, message in (
        (("--partitions", "0,x"), "is not a comma-separated list of partitions"),
        (("--from-offset", "1", "--from-time", "5"), "give --from-offset or --from-time, not both"),
        (("--partitions", "4"), "--partitions 4: not archived"),
        (("--rate-limit", "fast"), "is not a size"),
        (("--parallelism", "2", "--worker-index", "2"), "worker index 2 is not within 0..1"),
    ):
        result = run(*base, *extra)
        assert result.returncode != 0, extra
        assert "Traceback" not in result.stderr
        assert message in " ".join(re.sub("[│╭╮╰╯─]", " ", result.stderr).split()), result.stderr  # typer boxes
