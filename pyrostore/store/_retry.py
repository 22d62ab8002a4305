"""Retrying transient store failures with capped exponential backoff, within an optional deadline.

Every S3 and GCS call goes through :meth:`Retrier.run` (the libraries' own retries are off), so one option,
``retry_deadline``, bounds a whole operation on both backends, and each retry is logged the same way.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from typing import TypeVar

from pyrostore.errors import InvalidStoreURL, StoreUnreachable

log = logging.getLogger("pyrostore.store")

T = TypeVar("T")

FIRST_DELAY = 0.5  # seconds before the first retry; doubled after each failure
MAX_DELAY = 30.0  # a long outage is retried (and logged) about twice a minute
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
# An attempt's timeouts are cut to the deadline, but not below this: connecting to a healthy server must fit.
MIN_TIMEOUT = 1.0
# HTTP answers worth another attempt on every backend: request timeout, throttling, server errors.
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def check_deadline(url: str, value: float | None) -> float | None:
    """The ``retry_deadline`` option in seconds, or None for no deadline (absent or infinite).

    Raises InvalidStoreURL for a negative value or NaN.
    """
    if value is None or value == math.inf:
        return None
    if not value >= 0:  # written so that NaN fails too
        raise InvalidStoreURL(f"open {url}: retry_deadline must be a number of seconds >= 0, not {value}")
    return float(value)


def attempt_timeouts(deadline: float | None) -> tuple[float, float]:
    """Connect and read timeouts of one attempt, so that a single attempt cannot outlast the deadline."""
    if deadline is None:
        return CONNECT_TIMEOUT, READ_TIMEOUT
    cap = max(deadline, MIN_TIMEOUT)
    return min(CONNECT_TIMEOUT, cap), min(READ_TIMEOUT, cap)


def unreachable(where: str, endpoint: str, deadline: float | None, reason: str) -> StoreUnreachable:
    """The error for an endpoint that could not be reached within the deadline, in one line naming the
    operation and store (``where``) and the endpoint."""
    within = f" within the retry deadline ({deadline:g} s)" if deadline is not None else ""
    return StoreUnreachable(f"{where}: cannot connect to {endpoint}{within}: {reason}")


class Retrier:
    """Runs a store's calls, retrying those that fail transiently until the store's deadline passes."""

    def __init__(
        self,
        url: str,
        endpoint: str,
        deadline: float | None,
        transient: Callable[[Exception], bool],
        describe: Callable[[Exception], str],
    ) -> None:
        """``transient`` says whether a failure may go away on its own; ``describe`` gives a one-line reason
        free of credentials, for the log."""
        self._url = url
        self._endpoint = endpoint
        self._deadline = deadline
        self._transient = transient
        self._describe = describe

    def run(self, op: str, key: str, call: Callable[[], T]) -> T:
        """Return ``call()``, calling it again after each transient failure while the deadline allows.

        Each retry is logged at WARNING on logger ``pyrostore.store``: operation, key, store, endpoint, reason.
        Raises the last failure unchanged when it is not transient or the deadline has passed.
        """
        started, attempt = time.monotonic(), 0
        while True:
            attempt += 1
            try:
                return call()
            except Exception as exc:
                delay = self._delay(exc, attempt, started)
                if delay is None:
                    raise
                where = f"{op} {key!r} in {self._url} (endpoint {self._endpoint})"
                log.warning("%s: %s; retry %d in %.1f s", where, self._describe(exc), attempt, delay)
                time.sleep(delay)

    def _delay(self, exc: Exception, attempt: int, started: float) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        if not self._transient(exc):
            return None
        # Jitter keeps many clients that failed together (archiver pods, threads) from retrying together.
        delay = min(MAX_DELAY, FIRST_DELAY * 2 ** min(attempt - 1, 16)) * random.uniform(0.5, 1.0)
        if self._deadline is None:
            return delay
        left = self._deadline - (time.monotonic() - started)
        # The last wait is shortened so that a last attempt is made right at the deadline.
        return min(delay, left) if left > 0 else None
