"""The archiver's shutdown budget: every blocking step of a shutdown takes at most what is left of the grace.

A broker that vanished never answers librdkafka's offset commit or the group leave of ``Consumer.close()``, and
neither call takes a timeout; a store that stopped answering keeps a flusher retrying. Each step asks the
:class:`Deadline` how long it may take and runs under :func:`within`, so SIGTERM always ends the process in time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# The Kafka steps of a shutdown together (offset commit, then group leave) only serve lag tools and a quick
# hand-over: a healthy broker answers both in well under a second, one that has not in this long is taken for gone.
KAFKA_STEP = 10.0


class Deadline:
    """A moment (on ``clock``) by which shutdown must be over; steps ask how long they may take."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._at = clock() + max(0.0, seconds)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self._at - self._clock())

    def share(self, seconds: float) -> Deadline:
        """A deadline ``seconds`` from now, or this one if it comes first (a step's share of the whole)."""
        return Deadline(min(seconds, self.remaining()), self._clock)


def within(step: Callable[[], object], seconds: float, what: str) -> bool:
    """Run the blocking ``step``, waiting for it at most ``seconds``; whether it finished (an exception in it is
    logged).

    A step that outlives its time is left running in a daemon thread, which the process's exit ends: the calls
    bounded here cannot be interrupted, and what they would have done is not needed for the archive's safety.
    The step starts even with no time left to wait: the thread keeps the Kafka consumer referenced, and a
    consumer freed before its close() ends closes itself, blocking, in its destructor.
    """

    def run() -> None:
        try:
            step()
        except Exception as exc:  # logged: shutdown goes on whatever a bounded step did
            log.warning("could not %s: %s", what, exc)

    thread = threading.Thread(target=run, name=f"shutdown: {what}", daemon=True)
    thread.start()
    thread.join(max(0.0, seconds))
    if thread.is_alive():
        log.warning("gave up waiting to %s after %.1fs", what, seconds)
        return False
    return True
