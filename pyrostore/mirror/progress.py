"""Showing a mirror's progress on a terminal: one line per partition with commits copied and pending, and the
objects and bytes written so far. Off a terminal the mirror logs a line per partition pass instead."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from pyrostore.mirror.copier import Copier
from pyrostore.mirror.partition import PartitionState


class MirrorDisplay:
    """A rich progress display fed by the mirror's ``on_commit`` callback; does nothing off a terminal."""

    def __init__(self, console: Console, copier: Copier | None = None) -> None:
        self.copier = copier
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} commits"),
            TextColumn("{task.fields[objects]} objects, {task.fields[mb]:.1f} MB written"),
            console=console,
            disable=not console.is_terminal,
        )
        self._tasks: dict[tuple[str, int], TaskID] = {}

    def __enter__(self) -> MirrorDisplay:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def update(self, state: PartitionState) -> None:
        """Show ``state`` (called after each commit of a partition)."""
        where = (state.topic, state.partition)
        if where not in self._tasks:
            self._tasks[where] = self._bar.add_task(f"{state.topic}/{state.partition}", total=None, objects=0, mb=0.0)
        objects = self.copier.objects if self.copier else 0
        mb = self.copier.bytes / 1e6 if self.copier else 0.0
        self._bar.update(
            self._tasks[where], completed=state.copied, total=state.copied + state.pending, objects=objects, mb=mb
        )
