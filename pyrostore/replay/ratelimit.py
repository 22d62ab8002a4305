"""Rate limits as token buckets: pure arithmetic over a clock the caller passes in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TokenBucket:
    """Allows ``rate`` units per second on average, with bursts of up to ``burst`` units.

    :meth:`take` never refuses: it spends the units (going into debt if need be) and returns how long the caller
    must wait before sending them, so a batch larger than the burst is simply paid off over time.
    """

    rate: float
    burst: float
    tokens: float = 0.0
    updated: float | None = None

    def take(self, amount: float, now: float) -> float:
        """Spend ``amount`` units at time ``now`` (seconds); return the seconds to wait before using them."""
        if self.updated is None:
            self.tokens = self.burst
        else:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= amount
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


@dataclass
class RateLimits:
    """Bytes and records per second together: the wait is the longer of the two buckets' waits."""

    bytes_bucket: TokenBucket | None
    records_bucket: TokenBucket | None

    @classmethod
    def of(cls, bytes_per_second: float | None, records_per_second: float | None) -> RateLimits:
        """Buckets for the given limits (None: unlimited), each allowing a burst of a tenth of a second."""

        def bucket(rate: float | None) -> TokenBucket | None:
            return TokenBucket(rate, rate / 10) if rate else None

        return cls(bucket(bytes_per_second), bucket(records_per_second))

    @property
    def limited(self) -> bool:
        """Whether any limit is set."""
        return self.bytes_bucket is not None or self.records_bucket is not None

    def chunk_records(self, bytes_per_record: float, maximum: int) -> int:
        """How many records to send between waits: at most a twentieth of a second's allowance, at least one."""
        count = float(maximum)
        if self.bytes_bucket is not None:
            count = min(count, self.bytes_bucket.rate / 20 / max(bytes_per_record, 1.0))
        if self.records_bucket is not None:
            count = min(count, self.records_bucket.rate / 20)
        return max(1, int(count))

    def take(self, nbytes: int, records: int, now: float) -> float:
        """Spend a chunk's bytes and records; return the seconds to wait before sending it."""
        waits = [0.0]
        if self.bytes_bucket is not None:
            waits.append(self.bytes_bucket.take(nbytes, now))
        if self.records_bucket is not None:
            waits.append(self.records_bucket.take(records, now))
        return max(waits)
