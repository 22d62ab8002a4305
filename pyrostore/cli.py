"""The ``pyrostore`` command: inspect, read, verify and clean an archive.

Every command takes the archive's store URL (a folder, ``file://``, ``s3://bucket/prefix``,
``gs://bucket/prefix``) and store options as repeatable ``-o key=value`` (for example
``-o endpoint_url=http://127.0.0.1:9000``). Errors print one line: exit code 2 for bad input, 1 at run time.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import sys
import threading
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from confluent_kafka import KafkaException
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, TaskID
from rich.table import Table

from pyrostore.archive import Archive, ArchivedRecord, open_archive
from pyrostore.errors import CommitConflict, InvalidSetting, PyrostoreError, StoreError, TopicNotFound, UsageError
from pyrostore.gc import collect_garbage
from pyrostore.index.commits import iter_commits
from pyrostore.index.history import history
from pyrostore.index.tree import NodeStore
from pyrostore.kafka import error_text, load_properties
from pyrostore.layout import check_topic
from pyrostore.logs import LogFormat
from pyrostore.logs import configure as configure_logs
from pyrostore.replay.options import DEFAULT_CHECKPOINT_TOPIC, Partitioning
from pyrostore.serve.config import Compression
from pyrostore.settings import parse_duration, parse_pairs, parse_partitions, parse_size, parse_time
from pyrostore.sql.output import ResultFormat
from pyrostore.verify import verify_partition

# Locals are never shown in tracebacks: they may hold credentials.
app = typer.Typer(
    add_completion=False,
    pretty_exceptions_show_locals=False,
    help="Streaming storage that never forgets.",
)
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)  # no 80-column tables in pipes
err = Console(stderr=True, soft_wrap=True)

# CLI commands are interactive: a store that does not answer is reported within this many seconds
# (long-running processes keep retrying instead).
CLI_RETRY_DEADLINE = "15"
# pyrostore serve answers a store that does not answer with a retriable error before clients time out (30 s).
SERVE_RETRY_DEADLINE = "20"

StoreOptions = Annotated[
    list[str] | None, typer.Option("-o", "--store-option", help="store option key=value (repeatable)")
]
LogFormatOption = Annotated[LogFormat, typer.Option(help="text on a terminal and JSON otherwise (auto), or as named")]


class OutputFormat(StrEnum):
    """``cat --format``: how records are printed."""

    TEXT = "text"  # kcat-like lines
    JSONL = "jsonl"  # one JSON object per record, kcat -J fields


class HistoryFormat(StrEnum):
    """``log --format``: how commits are printed."""

    TABLE = "table"
    JSONL = "jsonl"  # one JSON object per commit


PartitionsOption = Annotated[list[int] | None, typer.Option("-p", "--partition", min=0, help="repeatable; default all")]
AsOfOption = Annotated[
    str | None, typer.Option(help="read the archive as of a time (ms or ISO 8601) or a commit TOPIC/PARTITION@SEQ")
]


def store_options(pairs: list[str] | None, interactive: bool = True) -> dict[str, str]:
    """Store options from ``-o`` pairs; interactive commands give up on an unreachable store quickly."""
    options = parse_pairs(pairs, "--store-option")
    if interactive:
        options.setdefault("retry_deadline", CLI_RETRY_DEADLINE)
        # The error at the deadline is the one line a person waiting needs; each retry before it is not.
        logging.getLogger("pyrostore.store").setLevel(logging.ERROR)
    return options


def _open(url: str, options: list[str] | None, as_of: str | None = None) -> Archive:
    return open_archive(url, as_of, **store_options(options))


@app.command("ls")
def list_archive(url: str, store_option: StoreOptions = None) -> None:
    """List archived topics and partitions: offset ranges, records, bytes, segments, commits."""
    archive = _open(url, store_option)
    if not archive.topics():
        out.print(f"no topic is archived at {archive.store.url}")
        return
    table = Table("topic", "partition", "start", "next offset", "records", "bytes", "segments", "commits")
    for topic in archive.topics():
        for partition in archive.partitions(topic):
            commit = archive.partition(topic, partition).commit
            table.add_row(
                topic,
                str(partition),
                str(commit.start_offset),
                str(commit.next_offset),
                str(commit.records),
                str(commit.bytes),
                str(commit.segments),
                str(commit.seq + 1),
            )
    out.print(table)


def _text(value: bytes | None) -> str:
    return "NULL" if value is None else value.decode("utf-8", errors="backslashreplace")


def _json_bytes(doc: dict, name: str, value: bytes | None) -> None:
    """Put bytes into a JSON document as UTF-8 text, or as base64 with a marker when not UTF-8."""
    if value is None:
        doc[name] = None
        return
    try:
        doc[name] = value.decode("utf-8")
    except UnicodeDecodeError:
        doc[name] = base64.b64encode(value).decode()
        doc[f"{name}_encoding"] = "base64"


def format_record(record: ArchivedRecord, fmt: OutputFormat) -> str:
    """One output line for a record: kcat-like text, or one JSON object (kcat -J fields)."""
    if fmt is OutputFormat.TEXT:
        where = f"{record.topic} [{record.partition}] @ {record.offset} ts={record.timestamp}"
        return f"{where}: key {_text(record.key)}: {_text(record.value)}"
    doc: dict = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "tstype": "create" if record.timestamp_type == 0 else "logappend",
        "ts": record.timestamp,
        "leader_epoch": record.leader_epoch,
    }
    doc["headers"] = []
    for key, value in record.headers:
        header: dict = {"key": key}
        _json_bytes(header, "value", value)
        doc["headers"].append(header)
    _json_bytes(doc, "key", record.key)
    _json_bytes(doc, "payload", record.value)
    return json.dumps(doc)


@app.command("cat")
def cat(
    url: str,
    topic: str,
    partition: PartitionsOption = None,
    from_offset: Annotated[int | None, typer.Option(min=0, help="first offset to print")] = None,
    from_time: Annotated[str | None, typer.Option(help="ms since epoch or ISO 8601: first record at or after")] = None,
    count: Annotated[int | None, typer.Option("-n", "--count", min=0, help="stop after this many records")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="kcat-like text, or JSON lines")] = OutputFormat.TEXT,
    as_of: AsOfOption = None,
    store_option: StoreOptions = None,
) -> None:
    """Print archived records of a topic, partition by partition, like kcat's consumer (--as-of: as the archive was
    then)."""
    if from_offset is not None and from_time is not None:
        raise InvalidSetting("give --from-offset or --from-time, not both")
    since = parse_time(from_time, "--from-time") if from_time is not None else None
    check_topic(topic)
    archive = _open(url, store_option, as_of)
    remaining = count
    for p in partition or archive.partitions(topic):
        reader = archive.partition(topic, p)
        start = from_offset
        if since is not None:
            start = reader.offset_for_time(since)
            if start is None:
                continue
        for record in reader.read(max(start, reader.start_offset) if start is not None else None, skip_lost=True):
            if remaining is not None and remaining <= 0:
                return
            sys.stdout.write(format_record(record, fmt) + "\n")
            if remaining is not None:
                remaining -= 1


@app.command("log")
def commit_log(
    url: str,
    topic: str,
    partition: PartitionsOption = None,
    fmt: Annotated[HistoryFormat, typer.Option("--format", help="a table, or JSON lines")] = HistoryFormat.TABLE,
    store_option: StoreOptions = None,
) -> None:
    """List every commit of a topic's partitions, oldest first: sequence, time, what it did, writer and epoch,
    offsets, records and root digest. Each can be read with --as-of TOPIC/PARTITION@SEQ."""
    check_topic(topic)
    archive = _open(url, store_option)
    shown: list[list[str]] = []
    for p in partition or archive.partitions(topic):
        rows = list(history(iter_commits(archive.store, topic, p)))
        if not rows:
            raise TopicNotFound(f"{archive.store.url} holds no archive of {topic}/{p}")
        for row in rows:
            if fmt is HistoryFormat.JSONL:
                sys.stdout.write(json.dumps(row) + "\n")
            else:
                shown.append([str(row[name]) if row[name] is not None else "-" for name in _LOG_COLUMNS])
    if fmt is HistoryFormat.TABLE:
        out.print(_uncut_table(list(_LOG_COLUMNS.values()), shown), highlight=False)


# pyrostore log's table: row field -> column title.
_LOG_COLUMNS = {
    "partition": "partition",
    "seq": "seq",
    "committed_at": "time",
    "kind": "kind",
    "writer_id": "writer",
    "writer_epoch": "epoch",
    "start_offset": "start",
    "next_offset": "next offset",
    "records": "records",
    "root": "root",
}


def _uncut_table(titles: list[str], rows: list[list[str]]) -> Table:
    """A table whose cells are never cut short, however narrow the terminal: digests and ids are copied from it."""
    table = Table(*titles)
    for i, column in enumerate(table.columns):
        column.no_wrap = True
        column.min_width = max([len(titles[i]), *(len(row[i]) for row in rows)])
    for row in rows:
        table.add_row(*row)
    return table


@app.command("verify")
def verify(url: str, topic: Annotated[str | None, typer.Argument()] = None, store_option: StoreOptions = None) -> None:
    """Check every commit, index node and segment digest and every offset; exit 1 on any problem."""
    only = check_topic(topic) if topic else None
    archive = _open(url, store_option)
    logged = archive.logged_partitions(only)
    if not logged:
        out.print(f"no topic is archived at {archive.store.url}" + (f" under the name {topic!r}" if topic else ""))
        raise typer.Exit(1 if topic else 0)
    problems = 0
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        for name, partitions in logged.items():
            nodes = NodeStore(archive.store, name)
            for p in partitions:
                task = progress.add_task(f"{name}/{p}", total=None)

                def advance(done: int, total: int, task: TaskID = task) -> None:
                    progress.update(task, completed=done, total=total)

                report = verify_partition(archive.store, nodes, name, p, advance)
                progress.remove_task(task)
                problems += len(report.problems)
                state = "[green]ok[/]" if report.ok else f"[red]{len(report.problems)} problem(s)[/]"
                out.print(
                    f"{name}/{p}: {state}  commits {report.commits}  nodes {report.nodes}  "
                    f"segments {report.segments}  records {report.records}  next offset {report.next_offset}"
                )
                for problem in report.problems:
                    out.print(f"  [red]✗[/] {problem.where}: {problem.message}", highlight=False)
    if problems:
        out.print(f"[red]{problems} problem(s) found[/]")
        raise typer.Exit(1)
    out.print("[green]archive verified: no problems[/]")


@app.command("gc")
def gc(
    url: str,
    grace: Annotated[str, typer.Option(help="keep unreferenced objects younger than this")] = "24h",
    dry_run: Annotated[bool, typer.Option(help="only list what would be deleted")] = False,
    store_option: StoreOptions = None,
) -> None:
    """Delete segments and index nodes that no commit references and that are older than the grace period."""
    grace_period = parse_duration(grace, "--grace")
    archive = _open(url, store_option)
    report = collect_garbage(archive, grace_period, dry_run=dry_run)
    verb = "would delete" if dry_run else "deleted"
    for key in report.deleted:
        out.print(f"{verb} {key}", highlight=False)
    out.print(
        f"{verb} {len(report.deleted)} object(s); kept {report.referenced} referenced and "
        f"{len(report.kept_young)} unreferenced younger than {grace}"
    )


@app.command("sql")
def sql(
    url: str,
    query: Annotated[str, typer.Argument(help='SQL; each topic is a view named as the topic, e.g. "orders"')],
    fmt: Annotated[ResultFormat, typer.Option("--format", help="how the result is written")] = ResultFormat.TABLE,
    output: Annotated[str | None, typer.Option(help="write the result to this file (parquet needs it)")] = None,
    as_of: AsOfOption = None,
    store_option: StoreOptions = None,
) -> None:
    """Query every archived topic with DuckDB: exactly the committed segments, one view per topic."""
    from pyrostore.sql import connect, parse_as_of, run_query
    from pyrostore.sql.output import check_output, write_result

    check_output(fmt, output)
    when = parse_as_of(as_of) if as_of is not None else None
    options = store_options(store_option)
    result = run_query(connect(open_archive(url, **options), options, when), query)
    write_result(result, fmt, output, out)


KafkaProperties = Annotated[
    list[str] | None, typer.Option("-X", help="Kafka client property key=value, e.g. security.protocol=SSL")
]
KafkaPropertiesFile = Annotated[
    Path | None, typer.Option("--kafka-properties", help="a Kafka client properties file (TLS, SASL)")
]


def kafka_properties(pairs: list[str] | None, path: Path | None) -> dict[str, str]:
    """Kafka client properties from a file, then ``-X`` pairs (which win)."""
    from_file = load_properties(path) if path else {}
    return {**from_file, **parse_pairs(pairs, "-X")}


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@app.command("archive")
def archive(
    bootstrap_servers: Annotated[str, typer.Option("--bootstrap-servers", "-b", help="Kafka HOST:PORT[,...]")],
    topic: Annotated[str, typer.Option("--topic", "-t", help="the topic to archive")],
    store: Annotated[str, typer.Option("--store", help="archive URL: folder, s3://, gs://")],
    group: Annotated[str | None, typer.Option(help="consumer group (default pyrostore-<topic>)")] = None,
    instance_id: Annotated[
        str | None,
        typer.Option(
            help="static group membership: a replica restarted with the same id gets its partitions back at once"
        ),
    ] = None,
    segment_bytes: Annotated[str, typer.Option(help="roll a segment at this size")] = "64MiB",
    segment_age: Annotated[str, typer.Option(help="roll a segment this long after its first record")] = "60s",
    metrics_port: Annotated[int | None, typer.Option(help="serve Prometheus metrics on this port")] = None,
    accept_loss: Annotated[
        bool, typer.Option(help="record offsets Kafka deleted before they were archived, instead of stopping")
    ] = False,
    shutdown_grace: Annotated[str, typer.Option(help="time to commit open segments on SIGTERM")] = "25s",
    log_format: LogFormatOption = LogFormat.AUTO,
    x: KafkaProperties = None,
    kafka_properties_file: KafkaPropertiesFile = None,
    store_option: StoreOptions = None,
) -> None:
    """Archive a Kafka topic continuously until SIGTERM (replicas in one group share its partitions)."""
    from pyrostore.archiver import Archiver, ArchiverConfig
    from pyrostore.archiver.config import consumer_config

    configure_logs(log_format)
    config = ArchiverConfig(
        bootstrap_servers=bootstrap_servers,
        topic=check_topic(topic),
        store_url=store,
        store_options=store_options(store_option, interactive=False),
        group_id=group,
        instance_id=instance_id or None,
        segment_bytes=parse_size(segment_bytes, "--segment-bytes"),
        segment_age=parse_duration(segment_age, "--segment-age").total_seconds(),
        kafka_properties=kafka_properties(x, kafka_properties_file),
        metrics_port=metrics_port,
        accept_loss=accept_loss,
        shutdown_grace=parse_duration(shutdown_grace, "--shutdown-grace").total_seconds(),
    )
    consumer_config(config, "check")  # refuses properties that would break the archive
    Archiver(config).run(_stop_on_signals())


@app.command("operator")
def operator(
    namespace: Annotated[
        list[str] | None, typer.Option("--namespace", "-n", help="watch this namespace (repeatable; default: all)")
    ] = None,
    liveness: Annotated[
        str | None, typer.Option(help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz")
    ] = None,
    log_format: LogFormatOption = LogFormat.AUTO,
) -> None:
    """Run the Kubernetes operator for TopicArchive and ReplayJob resources (settings from PYROSTORE_* variables)."""
    from pyrostore.operator.runner import run

    run(namespace or [], liveness, log_format)


@app.command("replay")
def replay(
    store: Annotated[str, typer.Option("--store", help="archive URL: folder, s3://, gs://")],
    topic: Annotated[str, typer.Option("--topic", "-t", help="the archived (source) topic")],
    to_topic: Annotated[str, typer.Option("--to-topic", help="the Kafka topic to produce into")],
    bootstrap_servers: Annotated[str, typer.Option("--bootstrap-servers", "-b", help="Kafka HOST:PORT[,...]")],
    from_offset: Annotated[int | None, typer.Option(min=0, help="first offset (inclusive), in every partition")] = None,
    from_time: Annotated[str | None, typer.Option(help="ms or ISO 8601: the first record at or after it")] = None,
    to_offset: Annotated[int | None, typer.Option(min=0, help="stop before this offset, in every partition")] = None,
    to_time: Annotated[
        str | None, typer.Option(help="ms or ISO 8601: stop before the first record at or after it")
    ] = None,
    partitions: Annotated[str | None, typer.Option(help="source partitions, e.g. 0,3 (default all)")] = None,
    partitioning: Annotated[
        Partitioning, typer.Option(help="keep partition numbers, hash keys as Kafka does, or round-robin")
    ] = Partitioning.PRESERVE,
    rate_limit: Annotated[str | None, typer.Option(help="bytes per second (keys, values, headers), e.g. 10MB")] = None,
    records_per_second: Annotated[float | None, typer.Option(help="records per second")] = None,
    exactly_once: Annotated[bool, typer.Option(help="transactions: each record lands exactly once")] = False,
    provenance_headers: Annotated[
        bool, typer.Option(help="add pyrostore.source.topic/partition/offset headers")
    ] = False,
    create_topic: Annotated[bool, typer.Option(help="create the target topic if missing")] = False,
    dry_run: Annotated[
        bool, typer.Option(help="print partitions, offset ranges, records and bytes; send nothing")
    ] = False,
    parallelism: Annotated[int, typer.Option(help="workers sharing the partitions (a Kubernetes Indexed Job)")] = 1,
    worker_index: Annotated[
        int | None, typer.Option(help="this worker's index (default $JOB_COMPLETION_INDEX, else 0)")
    ] = None,
    replay_id: Annotated[
        str | None, typer.Option(help="names the replay's checkpoints (default: from its options)")
    ] = None,
    checkpoint_topic: Annotated[
        str, typer.Option(help="compacted topic holding replay checkpoints")
    ] = DEFAULT_CHECKPOINT_TOPIC,
    checkpoint_interval: Annotated[str, typer.Option(help="time between checkpoints (and transactions)")] = "1s",
    log_format: LogFormatOption = LogFormat.AUTO,
    x: KafkaProperties = None,
    kafka_properties_file: KafkaPropertiesFile = None,
    store_option: StoreOptions = None,
) -> None:
    """Replay an archived topic (or a range of it) into a Kafka topic; run again with the same options to resume."""
    from pyrostore.replay import Replayer, ReplayOptions, plan_replay
    from pyrostore.replay.progress import ProgressDisplay

    configure_logs(log_format)
    if worker_index is None:
        index = os.environ.get("JOB_COMPLETION_INDEX", "0")
        if not index.isdigit():
            raise InvalidSetting(f"JOB_COMPLETION_INDEX={index!r} is not a number (give --worker-index)")
        worker_index = int(index)
    options = ReplayOptions(
        store_url=store,
        topic=topic,
        to_topic=to_topic,
        bootstrap_servers=bootstrap_servers,
        store_options=store_options(store_option, interactive=dry_run),
        from_offset=from_offset,
        from_time=parse_time(from_time, "--from-time") if from_time is not None else None,
        to_offset=to_offset,
        to_time=parse_time(to_time, "--to-time") if to_time is not None else None,
        partitions=parse_partitions(partitions, "--partitions") if partitions is not None else None,
        partitioning=partitioning,
        rate_limit=parse_size(rate_limit, "--rate-limit") if rate_limit is not None else None,
        records_per_second=records_per_second,
        exactly_once=exactly_once,
        provenance_headers=provenance_headers,
        create_topic=create_topic,
        kafka_properties=kafka_properties(x, kafka_properties_file),
        replay_id=replay_id,
        worker_index=worker_index,
        workers=parallelism,
        checkpoint_topic=checkpoint_topic,
        checkpoint_interval=parse_duration(checkpoint_interval, "--checkpoint-interval").total_seconds(),
    )
    if dry_run:
        for line in plan_replay(options).describe():
            out.print(line, highlight=False)
        return
    with ProgressDisplay(err) as display:
        progress = Replayer(options, on_progress=display.update).run(_stop_on_signals())
    if not progress.finished:
        err.print(
            f"stopped at {progress.records_done}/{progress.records_total} records; run the same command to resume",
            highlight=False,
        )
        raise typer.Exit(1)
    err.print(f"replayed {progress.records_done} records into {to_topic}", highlight=False)


@app.command("serve")
def serve(
    store: Annotated[str, typer.Option("--store", help="archive URL: folder, s3://, gs://")],
    bootstrap_servers: Annotated[
        str | None,
        typer.Option("--bootstrap-servers", "-b", help="live Kafka HOST:PORT[,...], served past the archive's end"),
    ] = None,
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on (port 0: any free port)")] = "127.0.0.1:9092",
    advertise: Annotated[
        str | None, typer.Option(help="HOST:PORT clients are told to connect to (default: the listen address)")
    ] = None,
    topic: Annotated[
        list[str] | None, typer.Option("--topic", "-t", help="serve this topic (repeatable; default: every topic)")
    ] = None,
    max_request_bytes: Annotated[str, typer.Option(help="close connections sending larger requests")] = "100MiB",
    batch_bytes: Annotated[str, typer.Option(help="size of the record batches cut from segments")] = "1MiB",
    compression: Annotated[Compression, typer.Option(help="compression of served record batches")] = Compression.NONE,
    group_initial_rebalance_delay: Annotated[
        str, typer.Option(help="how long a new consumer group waits for more members before its first assignment")
    ] = "3s",
    metrics_port: Annotated[int | None, typer.Option(help="serve Prometheus metrics on this port")] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="listen with TLS: the server's certificate (PEM, with any chain)")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="the private key of --tls-cert (PEM, unencrypted)")] = None,
    tls_client_ca: Annotated[
        Path | None, typer.Option(help="require client certificates signed by this CA (PEM) (mutual TLS)")
    ] = None,
    log_format: LogFormatOption = LogFormat.AUTO,
    x: KafkaProperties = None,
    kafka_properties_file: KafkaPropertiesFile = None,
    store_option: StoreOptions = None,
) -> None:
    """Serve archived topics over the Kafka protocol (read-only) until SIGTERM, for any Kafka client: the whole
    history, from the archive and, with --bootstrap-servers, live Kafka past its end."""
    from pyrostore.serve import ServeConfig, parse_address, run
    from pyrostore.serve.kafka_options import client_options
    from pyrostore.serve.tls import check_tls

    configure_logs(log_format)
    options = store_options(store_option, interactive=False)
    options.setdefault("retry_deadline", SERVE_RETRY_DEADLINE)  # a fetch gives up before the client does
    properties = kafka_properties(x, kafka_properties_file)
    if properties and not bootstrap_servers:
        raise InvalidSetting("Kafka properties (-X, --kafka-properties) need --bootstrap-servers")
    if bootstrap_servers:
        client_options(properties, bootstrap_servers)  # refuses unknown properties and unreadable TLS files now
    config = ServeConfig(
        store_url=store,
        store_options=options,
        bootstrap_servers=bootstrap_servers,
        kafka_properties=properties,
        metrics_port=metrics_port,
        listen=parse_address(listen, "--listen"),
        advertise=parse_address(advertise, "--advertise") if advertise is not None else None,
        topics=tuple(check_topic(t) for t in topic or ()),
        max_request_bytes=parse_size(max_request_bytes, "--max-request-bytes"),
        batch_bytes=parse_size(batch_bytes, "--batch-bytes"),
        compression=compression,
        group_initial_rebalance_delay=parse_duration(
            group_initial_rebalance_delay, "--group-initial-rebalance-delay"
        ).total_seconds(),
        tls=check_tls(tls_cert, tls_key, tls_client_ca),
    )
    run(config, _stop_on_signals())


def _fail(message: str, code: int) -> None:
    """Print ``message`` as one line (libraries' messages may span several) and exit with ``code``."""
    line = "; ".join(part.strip() for part in message.splitlines() if part.strip())
    err.print(f"[red]error:[/] {escape(line)}", highlight=False)
    sys.exit(code)


def main() -> None:
    """Console-script entry point: every error becomes one line on stderr, never a traceback.

    Exit codes: 2 for bad input (options, names, URLs, settings), 1 for failures at run time.
    """
    try:
        _run(sys.argv[1:] or ["--help"])
        code = 0
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    _leave(code)


def _leave(code: int) -> NoReturn:
    """Exit once everything written is flushed, without the interpreter's teardown: pyarrow's native thread pools
    can abort the process (SIGABRT, "terminate called without an active exception") when Python finalizes them
    after the work is done (apache/arrow#34314); a finished dry run failed that way once in a suite run."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def _run(args: list[str]) -> None:
    """Run the command line ``args``; exits (SystemExit) with the command's code or an error line."""
    try:
        code = app(args, standalone_mode=False)
    except typer.TyperException as exc:  # typer's usage errors (exit code 2): bad options, arguments, choices
        ctx = getattr(exc, "ctx", None)
        exit_code = getattr(exc, "exit_code", 2)
        where = f" (see {ctx.command_path} --help)" if ctx is not None and exit_code == 2 else ""
        _fail(exc.format_message() + where, exit_code)
    except typer.Abort:
        _fail("aborted", 130)
    except UsageError as exc:
        _fail(str(exc), 2)
    except PyrostoreError as exc:
        _fail(str(exc), 1)
    except KafkaException as exc:
        _fail(f"Kafka: {error_text(exc)}", 1)
    sys.exit(code if isinstance(code, int) else 0)


# pyrostore iceberg: the archive as an Iceberg table. pyiceberg is the optional `iceberg` extra, imported by
# the commands that use it.
iceberg_app = typer.Typer(help="The archive as Iceberg tables: segments registered as data files, never copied.")
app.add_typer(iceberg_app, name="iceberg")


@iceberg_app.command("sync")
def iceberg_sync(
    url: str,
    table: Annotated[str, typer.Option(help="the Iceberg table NAMESPACE.TABLE (created if missing)")],
    catalog: Annotated[str | None, typer.Option(help="a catalog named in pyiceberg's configuration")] = None,
    catalog_uri: Annotated[
        str | None, typer.Option(help="a catalog URI: sqlite:///FILE, postgresql://…, or http(s):// for REST")
    ] = None,
    catalog_property: Annotated[
        list[str] | None, typer.Option("-p", "--catalog-property", help="catalog property key=value (repeatable)")
    ] = None,
    topic: Annotated[str | None, typer.Option(help="the topic (default: the table's name)")] = None,
    location: Annotated[
        str | None,
        typer.Option(help="where a new table's metadata goes (default: the catalog's warehouse, else URL/iceberg/)"),
    ] = None,
    follow: Annotated[bool, typer.Option(help="keep syncing every --interval until stopped")] = False,
    interval: Annotated[str, typer.Option(help="time between syncs with --follow")] = "60s",
    store_option: StoreOptions = None,
) -> None:
    """Register every committed segment not yet in the table, in one Iceberg commit per run; safe to kill and
    rerun."""
    try:
        from pyiceberg.exceptions import CommitFailedException

        from pyrostore.iceberg.catalog import catalog_properties, default_topic, open_catalog, parse_table
        from pyrostore.iceberg.sync import sync_topic
        from pyrostore.iceberg.table import open_table
        from pyrostore.store.s3 import store_region
    except ImportError as exc:
        raise UsageError(
            f"pyrostore iceberg needs the iceberg extra (pip install 'pyrostore[iceberg]'): {exc}"
        ) from exc
    pause = parse_duration(interval, "--interval").total_seconds()
    identifier = parse_table(table)
    name = check_topic(topic) if topic else default_topic(table)
    options = store_options(store_option)
    properties = catalog_properties(
        catalog_uri,
        parse_pairs(catalog_property, "--catalog-property"),
        url,
        options,
        store_region(None, os.environ),  # the S3 store's own fallbacks
    )
    archive = open_archive(url, **options)
    fallback = archive.store.location("/".join(("iceberg", *identifier)))
    stop = _stop_on_signals() if follow else threading.Event()
    while True:
        try:
            archive.partitions(name)  # TopicNotFound before any table is made for it
            # Closed after each round: a SQL catalog holds a connection pool, and --follow runs for ever.
            with open_catalog(catalog, catalog_uri, properties) as opened:
                result = sync_topic(archive, name, open_table(opened, identifier, location, fallback))
        except CommitFailedException as exc:
            problem: PyrostoreError = CommitConflict(f"table {table}: another commit came first; nothing was changed")
            problem.__cause__ = exc
        except (TopicNotFound, StoreError) as exc:
            problem = exc
        except (OSError, ValueError) as exc:  # pyiceberg's catalog, FileIO and validation errors
            if isinstance(exc, PyrostoreError):
                raise
            raise PyrostoreError(f"table {table}: {exc}") from exc
        else:
            out.print(
                f"added {result.segments} segment(s), {result.records} record(s) of {name} to {table}"
                + (f" (snapshot {result.snapshot_id})" if result.snapshot_id is not None else "")
            )
            if not follow or stop.wait(pause):
                return
            continue
        # Following, the archive may not exist yet (the archiver's first commit is on its way) or be briefly
        # unreachable, and another sync may commit first: each is tried again next round, as planned afresh.
        if not follow:
            raise problem
        err.print(f"{problem}; retrying in {interval}", highlight=False)
        if stop.wait(pause):
            return


# pyrostore mirror / diff: two stores, so store options come per side (--source-option, --target-option) and
# -o gives options both sides share (an endpoint, when both prefixes live on one server).
SourceOptions = Annotated[
    list[str] | None, typer.Option("--source-option", help="source store option key=value (repeatable)")
]
TargetOptions = Annotated[
    list[str] | None, typer.Option("--target-option", help="target store option key=value (repeatable)")
]
MirrorTopics = Annotated[
    list[str] | None, typer.Option("--topic", "-t", help="this topic only (repeatable; default: every topic)")
]


def _two_stores(
    both: list[str] | None, source: list[str] | None, target: list[str] | None, interactive: bool
) -> tuple[dict[str, str], dict[str, str]]:
    """Store options of each side: ``-o`` pairs, then that side's own pairs (which win)."""
    shared = store_options(both, interactive)
    return (
        {**shared, **parse_pairs(source, "--source-option")},
        {**shared, **parse_pairs(target, "--target-option")},
    )


@app.command("mirror")
def mirror(
    source: str,
    target: str,
    topic: MirrorTopics = None,
    follow: Annotated[bool, typer.Option(help="keep mirroring every --interval until SIGTERM")] = False,
    interval: Annotated[str, typer.Option(help="time between passes with --follow")] = "10s",
    rate_limit: Annotated[str | None, typer.Option(help="bytes per second written to the target, e.g. 50MB")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="serve Prometheus metrics on this port")] = None,
    log_format: LogFormatOption = LogFormat.AUTO,
    store_option: StoreOptions = None,
    source_option: SourceOptions = None,
    target_option: TargetOptions = None,
) -> None:
    """Make TARGET an exact, independently readable copy of the archive at SOURCE: the commits it lacks, in order,
    each after the segments and nodes it needs, every object checked against its digest; safe to kill and rerun."""
    from pyrostore.mirror import Mirror, MirrorMetrics, MirrorOptions
    from pyrostore.mirror.progress import MirrorDisplay
    from pyrostore.store import open_store

    configure_logs(log_format)
    pause = parse_duration(interval, "--interval").total_seconds()
    options = MirrorOptions(
        topics=tuple(check_topic(t) for t in topic or ()),
        rate_limit=parse_size(rate_limit, "--rate-limit") if rate_limit is not None else None,
    )
    source_options, target_options = _two_stores(store_option, source_option, target_option, not follow)
    metrics = MirrorMetrics()
    if metrics_port is not None:
        metrics.serve(metrics_port)
    runner = Mirror(
        open_archive(source, **source_options).store, open_store(target, **target_options), options, metrics
    )
    stop = _stop_on_signals()
    with MirrorDisplay(err, runner.copier) as display:
        runner.on_commit = display.update
        if follow:
            runner.follow(pause, stop, lambda exc: err.print(f"{exc}; retrying in {interval}", highlight=False))
            return
        states = runner.run_once(stop)
    copied = sum(state.copied for state in states)
    err.print(
        f"copied {copied} commit(s), {runner.copier.objects} object(s), {runner.copier.bytes} bytes; "
        f"{len(states)} partition(s) {'stopped early' if stop.is_set() else 'up to date'}",
        highlight=False,
    )
    if stop.is_set():
        raise typer.Exit(1)


@app.command("diff")
def diff(
    source: str,
    target: str,
    topic: MirrorTopics = None,
    keys: Annotated[bool, typer.Option(help="also list the keys each side lacks")] = False,
    store_option: StoreOptions = None,
    source_option: SourceOptions = None,
    target_option: TargetOptions = None,
) -> None:
    """Compare two archives per partition: newest commits, the newest common one, whether the newest roots are
    equal, and the objects of each newest tree the other lacks. Exit 1 when they differ."""
    from pyrostore.mirror import diff_archives

    source_options, target_options = _two_stores(store_option, source_option, target_option, True)
    a, b = open_archive(source, **source_options), open_archive(target, **target_options)
    diffs = diff_archives(a.store, b.store, tuple(check_topic(t) for t in topic or ()))
    table = Table("topic", "partition", "source", "target", "common", "roots", "source only", "target only")

    def seq(value: int | None) -> str:
        return "-" if value is None else str(value)

    for d in diffs:
        table.add_row(
            d.topic,
            str(d.partition),
            seq(d.source_seq),
            seq(d.target_seq),
            seq(d.common_seq),
            "equal" if d.roots_equal else "differ",
            f"{len(d.source_only)} ({d.source_only_bytes} B)",
            f"{len(d.target_only)} ({d.target_only_bytes} B)",
        )
    out.print(table)
    if keys:
        for d in diffs:
            for key in d.source_only:
                out.print(f"source only: {key}", highlight=False)
            for key in d.target_only:
                out.print(f"target only: {key}", highlight=False)
    if not all(d.same and d.roots_equal for d in diffs):
        raise typer.Exit(1)
