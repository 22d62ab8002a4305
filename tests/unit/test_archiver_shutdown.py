"""The archiver's shutdown budget: how long each step may take, and steps bounded by it."""

from __future__ import annotations

import threading
import time

from pyrostore.archiver.shutdown import Deadline, within


class _Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_deadline_counts_down_to_zero_and_never_below():
    clock = _Clock()
    deadline = Deadline(20, clock)
    assert deadline.remaining() == 20
    clock.now += 15
    assert deadline.remaining() == 5
    clock.now += 10
    assert deadline.remaining() == 0
    assert Deadline(-3, clock).remaining() == 0


def test_a_steps_share_ends_at_its_own_limit_or_the_whole_deadline_whichever_comes_first():
    clock = _Clock()
    whole = Deadline(20, clock)
    share = whole.share(10)
    assert share.remaining() == 10
    clock.now += 4
    assert share.remaining() == 6 and whole.remaining() == 16
    clock.now += 12  # 4 s of the whole left: a new share gets no more than that
    assert whole.share(10).remaining() == 4
    assert share.remaining() == 0


def test_a_step_that_finishes_in_time_reports_so_and_its_exception_is_only_logged(caplog):
    done = []
    assert within(lambda: done.append(1), 5, "append")
    assert done == [1]
    assert within(lambda: 1 / 0, 5, "divide")  # finished, by failing
    assert "could not divide" in caplog.text


def test_a_step_that_blocks_is_given_up_after_its_time_and_started_even_with_none(caplog):
    release = threading.Event()
    started = time.monotonic()
    assert not within(lambda: release.wait(30), 0.1, "wait for a broker")
    assert time.monotonic() - started < 5
    assert "gave up waiting to wait for a broker after 0.1s" in caplog.text
    running = threading.Event()
    assert not within(lambda: (running.set(), release.wait(30)), 0, "close")
    assert running.wait(5)  # started all the same, and left running
    release.set()
