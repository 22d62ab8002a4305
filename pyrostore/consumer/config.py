"""Splitting a ``pyrostore.Consumer`` configuration into Pyrostore's settings and the inner Kafka consumer's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyrostore.consumer.decisions import ReadMode
from pyrostore.errors import ConsumerConfigError, InvalidSetting
from pyrostore.kafka import connection_config
from pyrostore.settings import parse_bool

PREFIX = "pyrostore."
STORE_OPTION_PREFIX = "pyrostore.store."
_KNOWN = ("pyrostore.store.url", "pyrostore.read.mode", "pyrostore.prefetch.segments", "pyrostore.refresh.ms")
STORE_RETRY_DEADLINE = 30.0  # seconds, unless pyrostore.store.retry_deadline says otherwise
_CALLBACKS = ("on_commit", "error_cb", "stats_cb", "throttle_cb", "oauth_cb", "logger")


@dataclass(frozen=True)
class ConsumerSettings:
    """Everything a ``pyrostore.Consumer`` needs from its configuration.

    ``kafka`` is the inner ``confluent_kafka.Consumer``'s configuration: the application's, except that offsets
    are stored by the wrapper (it stores them for archived records too) and an out-of-range fetch is reported
    instead of silently reset (the wrapper decides whether the archive holds the offset).
    """

    store_url: str
    store_options: dict[str, str]
    mode: ReadMode
    prefetch_segments: int
    refresh_seconds: float
    auto_offset_store: bool
    auto_offset_reset: str
    partition_eof: bool
    cooperative: bool
    kafka: dict[str, Any] = field(repr=False)
    admin: dict[str, Any] = field(repr=False)  # the connection settings, for looking up offsets beside the consumer


def parse_settings(conf: Mapping[str, Any]) -> ConsumerSettings:
    """Read a consumer configuration. Raises ConsumerConfigError naming the bad or missing key."""
    unknown = [k for k in conf if k.startswith(PREFIX) and k not in _KNOWN and not k.startswith(STORE_OPTION_PREFIX)]
    if unknown:
        raise ConsumerConfigError(f"unknown setting {unknown[0]!r}; Pyrostore's settings are {', '.join(_KNOWN)}")
    url = conf.get("pyrostore.store.url")
    if not url:
        raise ConsumerConfigError("pyrostore.store.url is required: the archive's store URL (a folder, s3:// or gs://)")
    try:
        mode = ReadMode.parse(str(conf.get("pyrostore.read.mode", ReadMode.ARCHIVE_PREFERRED.value)))
    except ValueError as exc:
        raise ConsumerConfigError(str(exc)) from None
    options = {
        k.removeprefix(STORE_OPTION_PREFIX): str(v)
        for k, v in conf.items()
        if k.startswith(STORE_OPTION_PREFIX) and k != "pyrostore.store.url"
    }
    # Archive reads may run inside poll(): a store that does not answer becomes an error, not an endless wait.
    options.setdefault("retry_deadline", str(STORE_RETRY_DEADLINE))
    reset = str(conf.get("auto.offset.reset", "latest"))
    if reset not in ("earliest", "smallest", "beginning", "latest", "largest", "end", "error"):
        raise ConsumerConfigError(f"auto.offset.reset {reset!r} is not earliest, latest or error")
    kafka = {k: v for k, v in conf.items() if not k.startswith(PREFIX)}
    kafka.update({"enable.auto.offset.store": False, "auto.offset.reset": "error"})
    return ConsumerSettings(
        store_url=str(url),
        store_options=options,
        mode=mode,
        prefetch_segments=_positive_int(conf, "pyrostore.prefetch.segments", 2),
        refresh_seconds=_positive_int(conf, "pyrostore.refresh.ms", 500) / 1000,
        auto_offset_store=_flag(conf, "enable.auto.offset.store", True),
        auto_offset_reset=reset,
        partition_eof=_flag(conf, "enable.partition.eof", False),
        cooperative="cooperative" in str(conf.get("partition.assignment.strategy", ""))
        or str(conf.get("group.protocol", "")) == "consumer",
        kafka=kafka if mode is not ReadMode.ARCHIVE_ONLY else {k: v for k, v in kafka.items() if k in _CALLBACKS},
        admin=_admin_config(kafka),
    )


def _admin_config(kafka: Mapping[str, Any]) -> dict[str, Any]:
    """The inner consumer's connection settings for an admin client of Pyrostore's own: without the
    application's callbacks (their errors and statistics would be reported twice), except OAuth's."""
    own = {k: v for k, v in kafka.items() if k not in _CALLBACKS}
    conf = connection_config(own, str(kafka.get("bootstrap.servers", "")))
    if not conf["bootstrap.servers"]:  # as the application's consumer: no bootstrap servers configured
        del conf["bootstrap.servers"]
    if "oauth_cb" in kafka:
        conf["oauth_cb"] = kafka["oauth_cb"]
    return conf


def _positive_int(conf: Mapping[str, Any], key: str, default: int) -> int:
    value = conf.get(key, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise ConsumerConfigError(f"{key} must be a positive whole number, not {value!r}")
    return number


def _flag(conf: Mapping[str, Any], key: str, default: bool) -> bool:
    value = conf.get(key, default)
    try:
        return parse_bool(value)
    except InvalidSetting:
        raise ConsumerConfigError(f"{key} must be true or false, not {value!r}") from None
