"""One way to parse each kind of setting, wherever it comes from: the command line, a Kubernetes resource, a
consumer configuration or a store option. Each parser raises :class:`~pyrostore.errors.InvalidSetting` naming
the value and, when given, the setting it was for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from pyrostore.errors import InvalidSetting

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_SIZE = re.compile(r"(\d+)\s*([KMG]i?B)?", flags=re.I)
_SIZE_UNITS = {"kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}


def _for(name: str | None) -> str:
    return f"{name}: " if name else ""


def parse_bool(value: object, name: str | None = None) -> bool:
    """True for ``true``, ``1``, ``yes``, ``on`` (any case), False for ``false``, ``0``, ``no``, ``off``; a bool
    stays as it is."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidSetting(f"{_for(name)}{value!r} is not true or false")


def parse_time(text: str, name: str | None = None) -> int:
    """Milliseconds since the epoch from an integer of ms, or an ISO 8601 / RFC 3339 time (UTC unless it says)."""
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        millis = int(text)
        if millis < 0:
            raise InvalidSetting(f"{_for(name)}{text!r} is before 1970 (negative milliseconds)")
        return millis
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidSetting(f"{_for(name)}{text!r} is neither milliseconds nor an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_duration(text: str, name: str | None = None) -> timedelta:
    """A duration such as ``500ms``, ``90s``, ``15m``, ``24h`` or ``7d``."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise InvalidSetting(f"{_for(name)}{text!r} is not a duration like 500ms, 30s, 15m, 24h or 7d")
    return timedelta(**{_DURATION_UNITS[match[2]]: float(match[1])})


def parse_size(text: str, name: str | None = None) -> int:
    """Bytes from ``1048576``, ``64MiB``, ``512KiB``, ``1GiB`` (or MB, KB, GB as powers of 1000)."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise InvalidSetting(f"{_for(name)}{text!r} is not a size like 64MiB")
    return int(match[1]) * _SIZE_UNITS.get((match[2] or "").lower(), 1)


def parse_pairs(pairs: Iterable[str] | None, name: str | None = None) -> dict[str, str]:
    """``["k=v", ...]`` as a dict (later pairs win); keys are stripped, values kept as given."""
    parsed = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidSetting(f"{_for(name)}{pair!r} is not key=value")
        parsed[key.strip()] = value
    return parsed


def parse_partitions(text: str, name: str | None = None) -> tuple[int, ...]:
    """``"0,3"`` as ``(0, 3)``: partition numbers, each 0 or more."""
    try:
        partitions = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        partitions = ()
    if not partitions or min(partitions) < 0:
        raise InvalidSetting(f"{_for(name)}{text!r} is not a comma-separated list of partitions")
    return partitions
