"""Showing a replay's progress: a progress bar on a terminal, a log line every few seconds otherwise."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

log = logging.getLogger("pyrostore.replay")


@dataclass(frozen=True)
class ReplayProgress:
    """How far a replay is: records and archived bytes done of the totals, and whether every range is done."""

    records_total: int
    records_done: int
    bytes_total: int
    bytes_done: int
    finished: bool


class ProgressDisplay:
    """Shows progress updates: a rich bar when ``console`` is a terminal, else a log line per ``interval`` s."""

    def __init__(self, console: Console, interval: float = 10.0) -> None:
        self.console = console
        self.interval = interval
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._started = time.monotonic()
        self._logged = self._started
        self._first_records: int | None = None

    def __enter__(self) -> ProgressDisplay:
        if self.console.is_terminal:
            self._bar = Progress(
                TextColumn("replay"),
                BarColumn(),
                TextColumn("{task.completed:,}/{task.total:,} records"),
                TextColumn("{task.fields[mb]:.1f}/{task.fields[mb_total]:.1f} MB"),
                TextColumn("{task.fields[rate]:,.0f} rec/s"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, progress: ReplayProgress) -> None:
        """Show the newest figures (cheap enough to call after every chunk)."""
        now = time.monotonic()
        if self._first_records is None:
            self._first_records = progress.records_done
            self._started = now
        elapsed = max(now - self._started, 1e-6)
        rate = (progress.records_done - self._first_records) / elapsed
        if self._bar is not None:
            fields: dict[str, Any] = {
                "mb": progress.bytes_done / 1e6,
                "mb_total": progress.bytes_total / 1e6,
                "rate": rate,
            }
            if self._task is None:
                self._task = self._bar.add_task("replay", total=progress.records_total, **fields)
            self._bar.update(self._task, completed=progress.records_done, **fields)
            return
        if now - self._logged >= self.interval or progress.finished:
            self._logged = now
            left = (progress.records_total - progress.records_done) / rate if rate > 0 else None
            log.info(
                "replayed %d/%d records, %d/%d bytes, %.0f records/s%s",
                progress.records_done,
                progress.records_total,
                progress.bytes_done,
                progress.bytes_total,
                rate,
                f", about {left:.0f}s left" if left is not None else "",
                extra={
                    "records_done": progress.records_done,
                    "records_total": progress.records_total,
                    "bytes_done": progress.bytes_done,
                    "bytes_total": progress.bytes_total,
                    "records_per_second": round(rate),
                },
            )
