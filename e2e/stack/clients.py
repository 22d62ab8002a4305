"""Real Kafka clients for tests and the demo, from the user-level cache: Debian's ``kcat`` (with Debian's
librdkafka) and Kafka's own Java console consumer (``kafka-tools`` at the stack's Kafka version).

Each wrapper reads a topic from its beginning to its end as a user would and returns one line per record, sorted
by (partition, offset), rendered so that two reads give equal lines exactly when the client printed the same
thing: null apart from empty, and long or binary keys, values and headers as their length and digest. A client
that fails or complains on stderr raises :class:`ClientFailed`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from e2e.stack import builds, debian

CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
# kcat's output: length-prefixed key and value (-Z prints "NULL" for a null or empty one, the length tells which),
# then the headers up to a record terminator.
_KCAT_FORMAT = r"%p\t%o\t%T\t%K\t%k\t%S\t%s\t%h\x1e\x1f\n"
_KCAT_END = b"\x1e\x1f\n"
# The console consumer's separators and null literal: long enough not to occur in test data, 1 MiB of random
# bytes included.
_FIELD = "<\u241f>"
_RECORD = "<\u241e>\n"
_NULL = "<\u2400>"
_CONSOLE_FIELDS = ("print.timestamp", "print.partition", "print.offset", "print.headers", "print.key", "print.value")
_LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="error">
  <Appenders><Console name="stderr" target="SYSTEM_ERR"><PatternLayout pattern="%p %m (%c)%n"/></Console></Appenders>
  <Loggers><Root level="error"><AppenderRef ref="stderr"/></Root></Loggers>
</Configuration>
"""
# What the console consumer writes to stderr when all is well: a notice when it joins a classic group, and on
# --timeout-ms the TimeoutException that ended its loop (with its stack); it exits 0.
_CONSOLE_ENDING = re.compile(
    r"(The consumer rebalance protocol \(KIP-848\) is production-ready!.*\n)?"
    r"(ERROR Error processing message, terminating consumer process: {2}\(\S+\)\n"
    r"org\.apache\.kafka\.common\.errors\.TimeoutException: null\n)?"
    r"Processed a total of \d+ messages\n?"
)


class ClientFailed(RuntimeError):
    """A client exited with an error or reported one; the message holds its command and stderr."""


@functools.cache
def kcat_folder() -> Path:
    """Debian's kcat and the libraries it needs, unpacked into the cache (built on first use)."""
    return builds.kcat()


@functools.cache
def kafka_tools() -> Path:
    """The folder of the console consumer's jars (fetched on first use)."""
    return builds.kafka_tools_libs()


def kcat_packages() -> dict[str, str]:
    """The Debian package versions behind :func:`kcat_command` (kcat, librdkafka1, ...)."""
    return debian.packages(kcat_folder())


def kcat_command(*args: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment variables that run kcat with ``args``."""
    folder = kcat_folder()
    return [str(folder / "root" / "usr" / "bin" / "kcat"), *args], {"LD_LIBRARY_PATH": debian.library_path(folder)}


def kcat_version() -> str:
    """kcat's version line (``Version 1.7.1 (... librdkafka 2.0.2 ...)``)."""
    return _version(*kcat_command("-V"))


def console_command(*args: str, log4j2: Path) -> list[str]:
    """The command line that runs Kafka's console consumer with ``args``, logging errors only, to stderr, as
    configured by a file :func:`console_logging` wrote."""
    # C1 only: these runs are short, and start-up is most of them.
    java = ["java", "-XX:TieredStopAtLevel=1", f"-Dlog4j2.configurationFile={log4j2}"]
    return [*java, "-cp", f"{kafka_tools()}/*", CONSOLE_CONSUMER, *args]


@contextmanager
def console_logging() -> Iterator[Path]:
    """A log4j2 configuration for :func:`console_command`, in a temporary folder that lasts the ``with``."""
    with tempfile.TemporaryDirectory(prefix="console-consumer-") as tmp:
        log4j2 = Path(tmp) / "log4j2.xml"
        log4j2.write_text(_LOG4J2)
        yield log4j2


def console_version() -> str:
    """The console consumer's ``--version`` line (the Kafka version of its jars)."""
    with console_logging() as log4j2:
        return _version(console_command("--version", log4j2=log4j2), {})


def console_help() -> str:
    """The console consumer's ``--help`` text (it prints it on stderr and exits 1)."""
    with console_logging() as log4j2:
        return subprocess.run(console_command("--help", log4j2=log4j2), capture_output=True, text=True).stderr


def _version(command: list[str], env: dict[str, str]) -> str:
    done = _run(command, env, timeout=60)
    return next(line for line in done.stdout.decode().splitlines() if re.search(r"\d+\.\d+", line))


def _run(
    command: list[str], env: dict[str, str], timeout: float, stdout: Path | None = None
) -> subprocess.CompletedProcess:
    with open(stdout, "w+b") if stdout else tempfile.TemporaryFile() as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, env={**os.environ, **env}, timeout=timeout)
        out.seek(0)
        captured = out.read()
    if done.returncode != 0:
        raise ClientFailed(f"`{' '.join(command)}` exited with {done.returncode}:\n{done.stderr.decode()[-3000:]}")
    return subprocess.CompletedProcess(command, 0, captured, done.stderr)


def kcat_consume(bootstrap: str, topic: str, config: dict[str, str] | None = None, timeout: float = 120) -> list[str]:
    """Every partition of ``topic`` as ``kcat -C -o beginning -e`` reads it (kcat's defaults, so librdkafka's
    ``isolation.level=read_committed``, unless ``config`` sets ``-X`` properties)."""
    settings = [arg for key, value in (config or {}).items() for arg in ("-X", f"{key}={value}")]
    args = ["-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-Z", "-f", _KCAT_FORMAT, *settings]
    command, env = kcat_command(*args)
    done = _run(command, env, timeout)
    complaints = [line for line in done.stderr.decode().splitlines() if not line.startswith("% Reached end of topic")]
    if complaints:
        raise ClientFailed(f"kcat reading {topic} from {bootstrap} said:\n" + "\n".join(complaints[-30:]))
    return _kcat_lines(done.stdout)


def _kcat_lines(output: bytes) -> list[str]:
    """Parse kcat's records (see ``_KCAT_FORMAT``) into sorted, rendered lines."""
    records, pos = [], 0
    while pos < len(output):
        partition, offset, stamp, key_size, rest = output[pos:].split(b"\t", 4)
        pos = len(output) - len(rest)
        key, pos = _sized(output, pos, int(key_size))
        value_size, rest = output[pos:].split(b"\t", 1)
        pos = len(output) - len(rest)
        value, pos = _sized(output, pos, int(value_size))
        end = output.index(_KCAT_END, pos)
        headers, pos = output[pos:end], end + len(_KCAT_END)
        records.append((int(partition), int(offset), f"ts={stamp.decode()}", key, value, headers))
    return _lines(records)


def _sized(output: bytes, pos: int, size: int) -> tuple[bytes | None, int]:
    """The ``size`` bytes at ``pos`` (-Z printed "NULL" for a null or empty one) and the position after their tab."""
    if size <= 0:
        if not output.startswith(b"NULL\t", pos):
            raise ClientFailed(f"kcat printed {output[pos : pos + 40]!r} for a key or value of length {size}")
        return (None if size < 0 else b""), pos + 5
    if output[pos + size : pos + size + 1] != b"\t":
        raise ClientFailed(f"kcat printed no tab after {size} bytes: {output[pos + size : pos + size + 40]!r}")
    return output[pos : pos + size], pos + size + 1


def console_consume(
    bootstrap: str,
    topic: str,
    isolation_level: str | None = None,
    timeout_ms: int = 5000,
    timeout: float = 180,
) -> list[str]:
    """Every partition of ``topic`` as Kafka's console consumer reads it, run as a user runs it (``--topic T
    --from-beginning``: it joins a consumer group of its own), ending when no record came for ``timeout_ms``; its
    default isolation level (read_uncommitted) unless one is given."""
    with console_logging() as log4j2:
        properties = [f"{name}=true" for name in _CONSOLE_FIELDS]
        properties += [f"key.separator={_FIELD}", f"line.separator={_RECORD}", f"null.literal={_NULL}"]
        args = ["--bootstrap-server", bootstrap, "--topic", topic, "--from-beginning", "--timeout-ms", str(timeout_ms)]
        args += [arg for prop in properties for arg in ("--formatter-property", prop)]
        args += ["--isolation-level", isolation_level] if isolation_level else []
        done = _run(console_command(*args, log4j2=log4j2), {}, timeout, stdout=log4j2.parent / "records.out")
        if complaints := _CONSOLE_ENDING.sub("", done.stderr.decode()).strip():
            raise ClientFailed(f"the console consumer reading {topic} from {bootstrap} said:\n{complaints[-3000:]}")
    return _lines(_console_records(done.stdout))


def _console_records(output: bytes) -> list[tuple]:
    """Parse the console consumer's records: timestamp, partition, offset, headers, key and value."""
    records = []
    for text in output.split(_RECORD.encode())[:-1]:
        stamp, partition, offset, headers, key, value = text.split(_FIELD.encode())
        null = _NULL.encode()
        records.append(
            (
                int(partition.removeprefix(b"Partition:")),
                int(offset.removeprefix(b"Offset:")),
                stamp.decode(),
                None if key == null else key,
                None if value == null else value,
                headers,
            )
        )
    return records


def _lines(records: list[tuple]) -> list[str]:
    """(partition, offset, timestamp text, key, value, headers) records as sorted, comparable lines."""
    return [
        f"{partition}\t{offset}\t{stamp}\tkey={show(key)}\tvalue={show(value)}\theaders={show(headers)}"
        for partition, offset, stamp, key, value, headers in sorted(records, key=lambda r: (r[0], r[1]))
    ]


def show(data: bytes | None) -> str:
    """How the lines show a key, value or headers: ``NULL``, short bytes as Python shows them, or the length
    and digest of anything longer."""
    if data is None:
        return "NULL"
    if len(data) <= 80:
        return repr(data)
    return f"<{len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()[:16]}>"
