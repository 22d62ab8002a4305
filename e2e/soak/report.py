"""The soak's checks and report: pure functions over what the run gathered, and RSS from /proc."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e.stack.faults import KINDS

RETRY_MARK = "; retry "  # how pyrostore's store retrier logs each retry


def rss_mb(pid: int) -> float | None:
    """The resident memory of process ``pid`` in MB (VmRSS), or None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def process_age(pid: int) -> float | None:
    """Seconds since process ``pid`` started, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except FileNotFoundError:
        return None
    return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: start time, in clock ticks


def retries_logged(log: Path) -> int:
    """How many store retries a component logged."""
    try:
        return log.read_text(errors="replace").count(RETRY_MARK)
    except FileNotFoundError:
        return 0


def _hashable(row: tuple) -> tuple:
    """The row with its headers (a list of pairs) as a tuple."""
    return tuple(tuple(map(tuple, field)) if isinstance(field, list) else field for field in row)


def lost_and_doubled(expected: dict[int, list[tuple]], found: dict[int, list[tuple]]) -> tuple[int, int]:
    """(records of ``expected`` missing from ``found``, records of ``found`` beyond ``expected``), comparing
    each partition's records as multisets: a record changed on the way counts as one lost and one extra."""
    lost = doubled = 0
    for p in expected.keys() | found.keys():
        want, got = Counter(map(_hashable, expected.get(p, []))), Counter(map(_hashable, found.get(p, [])))
        lost += sum((want - got).values())
        doubled += sum((got - want).values())
    return lost, doubled


@dataclass
class ReaderCheck:
    """A reader's figures against the topic: every record once, in order, with the topic's values."""

    records: int
    lost: int
    doubled: int
    same_values: bool
    gaps: list[list[int]] = field(default_factory=list)  # the first skips or repeats: partition, expected, seen

    @classmethod
    def of(cls, figures: dict[str, Any], ends: list[int], digests: list[int]) -> ReaderCheck:
        """Judge a reader's final figures (see ``roles.Tally``) against the topic's ends and value digests."""
        short = sum(max(0, end - got) for end, got in zip(ends, figures["next"], strict=True))
        return cls(
            records=figures["records"],
            lost=sum(figures["skipped"]) + short,
            doubled=sum(figures["doubled"]),
            same_values=figures["digests"] == digests,
            gaps=figures.get("gaps", []),
        )

    @property
    def ok(self) -> bool:
        """Every record seen exactly once with the right value."""
        return self.lost == 0 and self.doubled == 0 and self.same_values


@dataclass
class Component:
    """One row of the report."""

    name: str
    faults: dict[str, int] = field(default_factory=dict)  # the fault proxy's counts: requests and each kind
    retries: int | None = None
    sigkills: int | None = None
    records: int | None = None
    lost: int | None = None
    doubled: int | None = None
    rss_mid: float | None = None
    rss_end: float | None = None
    note: str = ""


def cell(value: Any) -> str:
    """A figure as the report prints it: ``-`` for unknown, floats rounded to whole numbers."""
    return "-" if value is None else f"{value:.0f}" if isinstance(value, float) else str(value)


def _change(mid: float | None, end: float | None) -> str:
    return "-" if not mid or end is None else f"{(end - mid) / mid * 100:+.1f}%"


def table(components: list[Component], mid_label: str) -> str:
    """The per-component table: faults by kind, retries, kills, records checked, lost, doubled, RSS."""
    header = [
        "component",
        "requests",
        *KINDS,
        "retries",
        "SIGKILL",
        "records",
        "lost",
        "doubled",
        f"RSS {mid_label} MB",
        "RSS end MB",
        "change",
        "note",
    ]
    rows = [header]
    for c in components:
        faults = [cell(c.faults.get(k)) for k in ("requests", *KINDS)]
        rows.append(
            [
                c.name,
                *faults,
                cell(c.retries),
                cell(c.sigkills),
                cell(c.records),
                cell(c.lost),
                cell(c.doubled),
                cell(c.rss_mid),
                cell(c.rss_end),
                _change(c.rss_mid, c.rss_end),
                c.note,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)
