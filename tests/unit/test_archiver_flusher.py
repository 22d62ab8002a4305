"""The archiver's memory budget for segments in flight, and the flushers that hold and release it."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from pyrostore.archiver.flusher import Flushed, Flusher, InFlight
from pyrostore.errors import StoreUnreachable
from pyrostore.segment import records_to_table
from tests.helpers import record


def _release_later(in_flight: InFlight, holder: object, size: int, delay: float = 0.05) -> threading.Thread:
    thread = threading.Timer(delay, in_flight.release, (holder, size))
    thread.start()
    return thread


def test_waiting_returns_at_once_when_there_is_room_and_times_out_when_there_is_none():
    in_flight = InFlight()
    in_flight.add("a", 60)
    in_flight.add("b", 50)
    assert in_flight.bytes == 110
    assert in_flight.wait_at_most(110, timeout=0)
    assert not in_flight.wait_at_most(100, timeout=0.05)


def test_a_waiter_wakes_as_soon_as_a_release_makes_room():
    in_flight = InFlight()
    in_flight.add("a", 60)
    in_flight.add("b", 50)
    _release_later(in_flight, "a", 20, delay=0.01)  # not enough room yet
    releaser = _release_later(in_flight, "b", 50, delay=0.1)
    started = time.monotonic()
    assert in_flight.wait_at_most(50, timeout=10)
    assert time.monotonic() - started < 5
    assert in_flight.bytes == 40
    releaser.join()


def test_a_forgotten_holder_stops_counting_and_its_later_releases_are_ignored():
    in_flight = InFlight()
    in_flight.add("gone", 100)
    in_flight.add("kept", 10)
    threading.Timer(0.05, in_flight.forget, ("gone",)).start()
    assert in_flight.wait_at_most(10, timeout=10)
    in_flight.release("gone", 100)
    assert in_flight.bytes == 10


class _Records:
    """Stands in for MessageColumns: a few records and their approximate size."""

    approx_bytes = 1000

    def __init__(self, start: int) -> None:
        self.start = start

    def to_table(self):
        return records_to_table([record(o) for o in range(self.start, self.start + 3)])


def _writer(append) -> SimpleNamespace:
    return SimpleNamespace(topic="t", partition=0, append=append, close=lambda: None)


def _hang_until(unblock: threading.Event):
    """A writer's append that commits only once ``unblock`` is set (or after 10 s)."""

    def hang(segments):
        unblock.wait(10)
        return SimpleNamespace(next_offset=3)

    return hang


def test_a_failed_commit_releases_its_bytes_and_reports_the_error():
    in_flight, results = InFlight(), []

    def fail(segments):
        raise StoreUnreachable("store down")

    flusher = Flusher(_writer(fail), results.append, in_flight)
    flusher.submit(_Records(0), 3)
    assert in_flight.wait_at_most(0, timeout=10)
    assert flusher.close(timeout=10)
    assert [type(r.error) for r in results] == [StoreUnreachable]
    flusher.submit(_Records(3), 6)  # after a failure nothing is taken, nor counted
    assert in_flight.bytes == 0


def test_a_flusher_closed_while_its_commit_hangs_no_longer_counts():
    in_flight, results, unblock = InFlight(), [], threading.Event()

    flusher = Flusher(_writer(_hang_until(unblock)), results.append, in_flight)
    flusher.submit(_Records(0), 3)
    assert in_flight.bytes == 1000
    assert not flusher.close(timeout=0.05)
    assert in_flight.bytes == 0
    unblock.set()
    assert flusher.close(timeout=10)  # the hung commit ends, then the thread
    assert in_flight.bytes == 0
    assert [(r.next_offset, r.error) for r in results] == [(3, None)]
    assert isinstance(results[0], Flushed)


def test_with_its_commit_hanging_and_its_queue_full_submit_and_close_give_up_in_time():
    in_flight, results, unblock = InFlight(), [], threading.Event()

    flusher = Flusher(_writer(_hang_until(unblock)), results.append, in_flight)
    assert flusher.submit(_Records(0), 3)  # committing
    assert flusher.submit(_Records(3), 6, timeout=1)  # queued
    started = time.monotonic()
    assert not flusher.submit(_Records(6), 9, timeout=0.05)  # no room: not taken, nor counted
    assert in_flight.bytes == 2000
    assert not flusher.close(timeout=0.05)  # not even room to ask it to stop
    assert time.monotonic() - started < 5
    assert in_flight.bytes == 0
    unblock.set()
