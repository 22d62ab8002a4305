"""Replay under SIGKILL and SIGTERM (resuming from checkpoints), and its rate limit over a real run."""

from __future__ import annotations

import random
import time
from collections import Counter

from confluent_kafka import Consumer, TopicPartition

from tests.kafka_helpers import kafka_rows
from tests.replay_helpers import KEEP_FOREVER, ReplayProcess, build_archive, numbered_record, replay_args


def _sources(rows: dict[int, list[tuple]]) -> Counter:
    """How often each source record (partition, offset) arrived, from its ``n`` header."""
    return Counter((p, int(dict(row[5])["n"])) for p, found in rows.items() for row in found)


def _killed_and_resumed(args: list[str], log, kills: int, rng: random.Random) -> None:
    """Start the replay, SIGKILL it ``kills`` times at random moments (restarting each time), then let it finish."""
    for _ in range(kills):
        replay = ReplayProcess(args, log).start()
        time.sleep(rng.uniform(0.8, 3.0))
        assert replay.proc.poll() is None, f"the replay ended before it could be killed:\n{replay.log_text()[-2000:]}"
        replay.kill()
    final = ReplayProcess(args, log).start()
    assert final.wait(300) == 0, final.log_text()[-3000:]


def test_exactly_once_survives_repeated_sigkill(kafka, new_topic, tmp_path):
    url = str(tmp_path / "archive")
    build_archive(url, "payments", partitions=3, records=4000, per_segment=500)
    target = new_topic(partitions=3, config=KEEP_FOREVER)
    args = replay_args(
        kafka.bootstrap,
        url,
        "payments",
        target,
        "--exactly-once",
        "--records-per-second",
        "1500",
        "--checkpoint-interval",
        "300ms",
    )
    rng = random.Random(6)
    _killed_and_resumed(args, tmp_path / "replay.log", kills=5, rng=rng)

    rows = kafka_rows(kafka.bootstrap, target, 3)  # read_committed
    arrived = _sources(rows)
    assert set(arrived.values()) == {1}, [k for k, n in arrived.items() if n != 1][:10]
    assert {p: [int(dict(row[5])["n"]) for row in found] for p, found in rows.items()} == {
        p: list(range(4000)) for p in range(3)
    }
    # The kills really aborted work: a read_uncommitted reader sees more than the committed records.
    uncommitted = Consumer(
        {"bootstrap.servers": kafka.bootstrap, "group.id": "x", "isolation.level": "read_uncommitted"}
    )
    ends = [uncommitted.get_watermark_offsets(TopicPartition(target, p), timeout=10)[1] for p in range(3)]
    uncommitted.close()
    assert sum(ends) > 12000


def test_at_least_once_mode_resumes_after_sigkill_and_sigterm(kafka, new_topic, tmp_path):
    url = str(tmp_path / "archive")
    build_archive(url, "clicks", partitions=2, records=3000, per_segment=400)
    target = new_topic(partitions=2, config=KEEP_FOREVER)
    args = replay_args(kafka.bootstrap, url, "clicks", target, "--records-per-second", "1500")
    log = tmp_path / "replay.log"
    stopped = ReplayProcess(args, log).start()
    time.sleep(2.0)
    stopped.proc.terminate()
    assert stopped.wait(60) == 1  # stopped before the end: exit 1, "run the same command to resume"
    assert "run the same command to resume" in stopped.log_text()
    _killed_and_resumed(args, log, kills=1, rng=random.Random(3))
    arrived = _sources(kafka_rows(kafka.bootstrap, target, 2))
    assert set(arrived) == {(p, o) for p in range(2) for o in range(3000)}
    assert sum(arrived.values()) - 6000 < 1500 * 2  # duplicates only from the killed run's last unacknowledged part


def test_rate_limit_holds_within_ten_percent_over_ten_seconds(kafka, new_topic, tmp_path):
    url = str(tmp_path / "archive")
    size = 1000
    build_archive(
        url, "metered", partitions=1, records=2600, per_segment=1000, record=lambda o: numbered_record(o, size)
    )
    # LogAppendTime: the broker stamps each record when it arrives, which measures the replay's sending pace.
    target = new_topic(partitions=1, config={"message.timestamp.type": "LogAppendTime", **KEEP_FOREVER})
    rate = 240_000
    result = ReplayProcess(
        replay_args(kafka.bootstrap, url, "metered", target, "--rate-limit", str(rate)), tmp_path / "replay.log"
    ).start()
    assert result.wait(120) == 0, result.log_text()[-2000:]
    rows = kafka_rows(kafka.bootstrap, target, 1)[0]
    assert len(rows) == 2600
    payload = [len(r[3] or b"") + len(r[4] or b"") + sum(len(k) + len(v or b"") for k, v in r[5]) for r in rows]
    seconds = (rows[-1][2] - rows[0][2]) / 1000
    assert seconds >= 10
    measured = sum(payload[1:]) / seconds
    assert abs(measured - rate) / rate < 0.10, f"{measured:.0f} B/s against a limit of {rate} B/s"
