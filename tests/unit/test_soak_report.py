"""The soak's pure parts: its schedule of SIGKILLs and broker restarts, and how it counts lost and doubled records."""

from __future__ import annotations

import itertools
import random

from e2e.soak.__main__ import BROKER_RESTARTS, _schedule
from e2e.soak.report import ReaderCheck, cell, lost_and_doubled


def test_the_schedule_spreads_kills_over_the_run_and_restarts_the_broker_at_each_quarter():
    events = _schedule(1800.0, 15.0, random.Random(1))
    kills = [at for at, what in events if what == "kill"]
    assert len(kills) == 120
    assert all(0 < at < 1800 for at in kills)
    assert max(b - a for a, b in itertools.pairwise(kills)) < 2 * 15.0
    assert [at for at, what in events if what == "broker"] == [450.0, 900.0, 1350.0][:BROKER_RESTARTS]
    assert [at for at, _ in events] == sorted(at for at, _ in events)


def test_lost_and_doubled_compare_each_partition_as_a_multiset():
    expected = {0: [(0, b"a"), (1, b"b")], 1: [(0, b"c")]}
    found = {0: [(0, b"a"), (0, b"a")], 1: [(0, b"c"), (1, b"d")]}
    assert lost_and_doubled(expected, found) == (1, 2)  # (1, b"b") lost; one (0, b"a") and (1, b"d") extra
    assert lost_and_doubled(expected, expected) == (0, 0)


def test_a_reader_short_of_the_ends_has_lost_records():
    figures = {"records": 5, "next": [3, 2], "skipped": [0, 0], "doubled": [0, 1], "digests": [7, 8]}
    check = ReaderCheck.of(figures, ends=[3, 4], digests=[7, 8])
    assert (check.lost, check.doubled, check.same_values, check.ok) == (2, 1, True, False)


def test_cells_print_unknowns_as_dashes_and_floats_whole():
    assert [cell(None), cell(163.6), cell(7), cell("x")] == ["-", "164", "7", "x"]
