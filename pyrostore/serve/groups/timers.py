"""Named timers for a group's deadlines: session expiry, rebalance and initial delays, pending syncs.

A group schedules an action under a key; scheduling the same key again replaces the earlier timer, as Kafka's
coordinator timer does. :class:`LoopTimers` runs them on the asyncio event loop; tests drive the same
:class:`Timers` interface by hand.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from typing import Protocol

log = logging.getLogger("pyrostore.serve")


class Timers(Protocol):
    """Where a group schedules its deadlines."""

    def schedule(self, key: Hashable, delay: float, action: Callable[[], None]) -> None:
        """Run ``action`` after ``delay`` seconds, replacing any timer under ``key``."""
        ...

    def cancel(self, key: Hashable) -> None:
        """Drop the timer under ``key``, if any."""
        ...

    def close(self) -> None:
        """Drop every timer."""
        ...


class LoopTimers:
    """Timers on the running event loop; ``after`` runs after each action (the coordinator tidies up there)."""

    def __init__(self, after: Callable[[], None] | None = None) -> None:
        self._handles: dict[Hashable, asyncio.TimerHandle] = {}
        self._after = after

    def schedule(self, key: Hashable, delay: float, action: Callable[[], None]) -> None:
        """Run ``action`` after ``delay`` seconds, replacing any timer under ``key``."""
        self.cancel(key)
        self._handles[key] = asyncio.get_running_loop().call_later(max(delay, 0.0), self._fire, key, action)

    def cancel(self, key: Hashable) -> None:
        """Drop the timer under ``key``, if any."""
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()

    def close(self) -> None:
        """Drop every timer."""
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()

    def __len__(self) -> int:
        return len(self._handles)

    def _fire(self, key: Hashable, action: Callable[[], None]) -> None:
        self._handles.pop(key, None)
        try:
            action()
            if self._after is not None:
                self._after()
        except Exception:  # a bug in one group must not stop the event loop's other work
            log.exception("a group timer (%s) failed", key)
