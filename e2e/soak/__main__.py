"""``python -m e2e.soak --minutes N`` (``make soak``): N minutes of archiving and reading under faults.

The stack's Kafka and MinIO; in front of MinIO one HTTP fault proxy per component failing ~10% of requests
(500, 503 SlowDown, 429, truncated bodies, stalls, taking turns). For N minutes a producer writes numbered
records into a 4-partition topic; two archiver replicas with instance ids archive it through the faults, the
first SIGKILLed about every 15 s (``--kill-every``) and restarted, the second never (so that its memory is
measured over the whole run); the broker is SIGKILLed and restarted three times; a ``pyrostore.Consumer``
and a plain consumer through ``pyrostore serve`` read the topic from the beginning (archive, then live Kafka).
Then the producer stops, the archivers catch up and stop, and the run checks: ``pyrostore verify``, the
archive against the topic record for record, an exactly-once replay of the archive (SIGKILLed five times on
the way and resumed) against the archive, each reader against the topic.
Every minute it notes each process's RSS, so the report can show whether memory levels off. It prints a
report and exits 1 on any loss, doubling, failed verify or unexpected exit.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.common import running_stack
from e2e.soak.report import (
    Component,
    ReaderCheck,
    cell,
    lost_and_doubled,
    process_age,
    retries_logged,
    rss_mb,
    table,
)
from e2e.soak.roles import digest, read_status
from e2e.stack import s3 as stack_s3
from pyrostore.index.commits import read_head
from pyrostore.store import open_store
from tests.kafka_helpers import ArchiverProcess, ChildProcess, archive_rows, kafka_rows
from tests.replay_helpers import KEEP_FOREVER, replay_args, without_offsets
from tests.serve_helpers import ServeProcess, free_port

PARTITIONS = 4
SHARE = 0.1
KILLED = "archiver-0"  # the replica SIGKILLed; archiver-1 runs throughout
KILL_EVERY = 15.0  # seconds between archiver SIGKILLs, on average: 40 in 10 minutes, 120 in 30
REPLAY_KILLS = 5  # SIGKILLs of the final exactly-once replay, each a few seconds after it (re)started
BROKER_RESTARTS = 3
MID = 300.0  # RSS is taken at 5 minutes (or half-way through a shorter run) and at the end
NO_KAFKA = "error: cannot reach Kafka"  # the one line of a process that found no broker at start
SETTLED = 20.0  # seconds a process runs before its first RSS counts
COMPONENTS = ("archivers", "serve", "consumer", "replay")


def _options(endpoint: str, region: str) -> list[str]:
    return ["-o", f"endpoint_url={endpoint}", "-o", f"region={region}"]


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(1.0)


def _reached(offsets: list[int], ends: list[int]) -> bool:
    return all(offset >= end for offset, end in zip(offsets, ends, strict=True))


def _schedule(seconds: float, kill_every: float, rng: random.Random) -> list[tuple[float, str]]:
    """When to SIGKILL an archiver (spread evenly, jittered) and when to restart the broker (at 1/4, 2/4, 3/4)."""
    kills = max(1, math.ceil(seconds / kill_every))
    step = seconds / kills
    events = [((i + 0.5) * step + rng.uniform(-step / 4, step / 4), "kill") for i in range(kills)]
    events += [(seconds * (i + 1) / (BROKER_RESTARTS + 1), "broker") for i in range(BROKER_RESTARTS)]
    return sorted(events)


class Soak:
    """One run: its folder, servers, processes and what they did."""

    def __init__(self, folder: Path, stack: Any, minutes: float, seed: int, kill_every: float = KILL_EVERY) -> None:
        self.folder, self.seconds, self.rng = folder, minutes * 60, random.Random(seed)
        self.kill_every = kill_every
        self.kafka, self.s3 = stack.get("kafka"), stack.get("s3")
        self.topic = f"soak-{uuid.uuid4().hex[:8]}"
        self.url = f"s3://{self.s3.bucket}/{self.topic}"
        self.direct = stack_s3.store_options(self.s3)  # past the fault proxies
        self.env = {"AWS_ACCESS_KEY_ID": self.s3.access_key, "AWS_SECRET_ACCESS_KEY": self.s3.secret_key}
        self.roles: dict[str, ChildProcess] = {}
        self.sigkills = {"archiver-0": 0, "archiver-1": 0}
        self.exits: dict[str, list[int | None]] = {}
        self.no_kafka_exits: dict[str, int] = {}
        self.broker_restarts = 0
        self.rss_mid: dict[str, float | None] = {}
        self.rss_end: dict[str, float | None] = {}
        self.pids_mid: dict[str, int] = {}
        self.pids_end: dict[str, int] = {}
        self.timeline: dict[str, list[float | None]] = {}  # RSS each minute, of processes never restarted
        self.load = (0.0, 0.0, 0.0)

    # --- processes ---------------------------------------------------------------------------------------

    def role(self, name: str, role: str, **config: Any) -> Any:
        """Start one of :mod:`e2e.soak.roles` as a child process; its status file is ``<name>.json``."""
        config["status"] = str(self.folder / f"{name}.json")
        args = [sys.executable, "-m", "e2e.soak.roles", role, json.dumps(config)]
        self.roles[name] = ChildProcess(args, self.folder / f"{name}.log", self.env).start()
        return self.roles[name]

    def status(self, name: str) -> dict[str, Any]:
        """A role's last figures (empty before its first)."""
        return read_status(self.folder / f"{name}.json") or {}

    def endpoint(self, component: str) -> str:
        """The address of the fault proxy in front of MinIO for ``component``."""
        return str(self.status("proxies")[component]["endpoint"])

    def start(self) -> None:
        """The topic, the fault proxies, the producer, the archivers, serve and the two readers."""
        admin = AdminClient({"bootstrap.servers": self.kafka.bootstrap})
        config = {"retention.ms": "-1"}
        admin.create_topics([NewTopic(self.topic, PARTITIONS, 1, config=config)])[self.topic].result(60)
        self.role(
            "proxies",
            "proxies",
            upstream=self.s3.endpoint,
            components=COMPONENTS,
            share=SHARE,
            stall_seconds=2.0,
            seed=self.rng.randrange(1 << 30),
        )
        _wait(lambda: len(self.status("proxies")) == len(COMPONENTS), 30, "the fault proxies")
        self.role("producer", "producer", bootstrap=self.kafka.bootstrap, topic=self.topic, pause=0.004)
        store = _options(self.endpoint("archivers"), self.s3.region)
        for i in range(2):
            name = f"archiver-{i}"
            self.roles[name] = ArchiverProcess(
                self.kafka.bootstrap,
                self.topic,
                self.url,
                self.folder / f"{name}.log",
                *store,
                "--instance-id",
                name,
                env=self.env,
            ).start()
        _wait(lambda: all(n > 0 for n in self.archived()), 120, "every partition's first commit")
        serve_store = _options(self.endpoint("serve"), self.s3.region)
        self.roles["serve"] = serve = ServeProcess(
            self.url,
            free_port(),
            self.folder / "serve.log",
            *serve_store,
            "-b",
            self.kafka.bootstrap,
            "-t",
            self.topic,
            env=self.env,
        ).start()
        consumer_conf = {
            "bootstrap.servers": self.kafka.bootstrap,
            "pyrostore.store.url": self.url,
            "pyrostore.store.endpoint_url": self.endpoint("consumer"),
            "pyrostore.store.region": self.s3.region,  # the credentials: AWS_* in the environment
        }
        self.role("consumer", "reader", kind="pyrostore", topic=self.topic, partitions=PARTITIONS, conf=consumer_conf)
        serve_conf = {"bootstrap.servers": serve.bootstrap}
        self.role("serve-reader", "reader", kind="serve", topic=self.topic, partitions=PARTITIONS, conf=serve_conf)

    def archived(self) -> list[int]:
        """Each partition's archived next offset (0 before its first commit), read past the fault proxy."""
        store = open_store(self.url, **self.direct)
        try:
            heads = [read_head(store, self.topic, p) for p in range(PARTITIONS)]
        finally:
            store.close()
        return [h.next_offset if h else 0 for h in heads]

    def watch(self) -> None:
        """Restart any role that exited on its own (an archiver killed by us is restarted at once)."""
        for name, proc in self.roles.items():
            if not proc.running():
                code = proc.proc.returncode if proc.proc else None
                last = (proc.log_text().strip().splitlines() or [""])[-1]
                # A process that starts while the broker restarts gives up after its metadata timeout, by design;
                # its supervisor (Kubernetes, here the soak) starts it again. Any other exit is a failure.
                if last.startswith(NO_KAFKA):
                    self.no_kafka_exits[name] = self.no_kafka_exits.get(name, 0) + 1
                else:
                    self.exits.setdefault(name, []).append(code)
                print(f"  !! {name} exited by itself ({code}: {last[:100]}); restarting it", flush=True)
                proc.start()

    def take_mid_rss(self, now: float) -> None:
        """The first RSS of each role, taken once its process has run SETTLED seconds (a replica SIGKILLed a
        moment ago would show a process still starting)."""
        for name, proc in self.roles.items():
            if name not in self.rss_mid and proc.proc and (process_age(proc.proc.pid) or 0) >= SETTLED:
                self.rss_mid[name], self.pids_mid[name] = rss_mb(proc.proc.pid), proc.proc.pid
        if len(self.rss_mid) == len(self.roles):
            print(f"  {now:5.0f} s  RSS taken", flush=True)

    def rss(self) -> dict[str, float | None]:
        """Each running role's resident memory in MB."""
        return {name: rss_mb(proc.proc.pid) for name, proc in self.roles.items() if proc.proc}

    # --- the run -----------------------------------------------------------------------------------------

    def run(self) -> None:
        """The soak's minutes: SIGKILLs and broker restarts as scheduled, RSS half-way (5 min at most), at the end."""
        events = _schedule(self.seconds, self.kill_every, self.rng)
        mid = min(MID, self.seconds / 2)
        started = time.monotonic()
        self.load = os.getloadavg()
        print(
            f"soak of {self.seconds / 60:.0f} min: {sum(e == 'kill' for _, e in events)} archiver SIGKILLs, "
            f"{BROKER_RESTARTS} broker restarts; logs in {self.folder}",
            flush=True,
        )
        minute = 0
        while (now := time.monotonic() - started) < self.seconds:
            if now >= mid and len(self.rss_mid) < len(self.roles):
                self.take_mid_rss(now)
            if now >= 60 * (minute + 1):
                minute += 1
                for name, mb in self.rss().items():
                    self.timeline.setdefault(name, []).append(mb)
            if events and now >= events[0][0]:
                _, what = events.pop(0)
                if what == "kill":
                    name = KILLED
                    self.roles[name].kill()
                    self.roles[name].start()
                    self.sigkills[name] += 1
                else:
                    self.kafka.restart(kill=True)
                    self.broker_restarts += 1
                print(
                    f"  {now:5.0f} s  {'SIGKILL ' + name if what == 'kill' else 'broker SIGKILL and restart'}; "
                    f"archived {sum(self.archived())}, produced {self.status('producer').get('sent')}",
                    flush=True,
                )
            self.watch()
            time.sleep(0.5)
        self.rss_end = self.rss()
        self.pids_end = {name: proc.proc.pid for name, proc in self.roles.items() if proc.proc}

    def finish(self) -> dict[str, Any]:
        """Stop writing, let everything catch up, stop it, and check it all; the figures of the report."""
        producer = self.roles.pop("producer")
        producer.stop(180)
        produced = self.status("producer")
        probe = Consumer({"bootstrap.servers": self.kafka.bootstrap, "group.id": "soak-probe"})
        ends = [probe.get_watermark_offsets(TopicPartition(self.topic, p), timeout=30)[1] for p in range(PARTITIONS)]
        probe.close()
        print(f"producer stopped: {produced}; topic ends {ends}; waiting for the archivers", flush=True)
        _wait(lambda: _reached(self.archived(), ends), 300, "the archivers to catch up")
        codes = {name: self.roles.pop(name).stop(120) for name in ("archiver-0", "archiver-1")}
        topic_rows = kafka_rows(self.kafka.bootstrap, self.topic, PARTITIONS)
        digests = [0] * PARTITIONS
        for p, rows in topic_rows.items():
            for row in rows:
                digests[p] = digest(digests[p], row[4])

        def caught_up(name: str) -> bool:
            self.watch()
            return _reached(self.status(name).get("next", [0] * PARTITIONS), ends)

        _wait(lambda: caught_up("consumer") and caught_up("serve-reader"), 300, "the readers to reach the ends")
        readers = {}
        for name in ("consumer", "serve-reader"):
            self.roles.pop(name).stop(60)
            readers[name] = ReaderCheck.of(self.status(name), ends, digests)
        self.roles.pop("serve").stop(60)

        verify = subprocess.run(
            [
                sys.executable,
                "-m",
                "pyrostore",
                "verify",
                self.url,
                self.topic,
                *_options(self.s3.endpoint, self.s3.region),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, **self.env},
        )
        stored = archive_rows(self.url, self.topic, PARTITIONS, **self.direct)
        archive_lost, archive_doubled = lost_and_doubled(topic_rows, stored)
        replay = self.replay(stored)
        self.roles.pop("proxies").stop(60)
        return {
            "produced": produced,
            "ends": ends,
            "codes": codes,
            "readers": readers,
            "verify": verify,
            "archive": (sum(map(len, stored.values())), archive_lost, archive_doubled),
            "replay": replay,
            "faults": {name: figures["counts"] for name, figures in self.status("proxies").items()},
        }

    def replay(self, stored: dict[int, list[tuple]]) -> dict[str, Any]:
        """An exactly-once replay of the archive (through the faults) into a new topic, checked against it."""
        target = f"{self.topic}-replayed"
        admin = AdminClient({"bootstrap.servers": self.kafka.bootstrap})
        admin.create_topics([NewTopic(target, PARTITIONS, 1, config=KEEP_FOREVER)])[target].result(60)
        args = replay_args(
            self.kafka.bootstrap,
            self.url,
            self.topic,
            target,
            "--exactly-once",
            *_options(self.endpoint("replay"), self.s3.region),
        )
        log = self.folder / "replay.log"
        started = time.monotonic()
        replay = ChildProcess(args, log, self.env).start()
        kills = 0
        while kills < REPLAY_KILLS:
            time.sleep(self.rng.uniform(3.0, 12.0))
            if not replay.running():
                break  # finished (or failed) before this kill: judged below
            replay.kill()
            kills += 1
            replay.start()
        code = replay.wait(3600)
        seconds = time.monotonic() - started
        replayed = kafka_rows(self.kafka.bootstrap, target, PARTITIONS)
        lost, doubled = lost_and_doubled(without_offsets(stored), without_offsets(replayed))
        records = sum(map(len, replayed.values()))
        figures = {"code": code, "seconds": seconds, "records": records, "lost": lost, "doubled": doubled}
        return figures | {"kills": kills, "log": log}

    # --- the report --------------------------------------------------------------------------------------

    def report(self, figures: dict[str, Any], minutes: float) -> bool:
        """Print the report; whether everything held."""
        faults, readers, replay = figures["faults"], figures["readers"], figures["replay"]
        archived, archive_lost, archive_doubled = figures["archive"]
        mid_label = f"{min(MID, self.seconds / 2) / 60:g} min"
        replicas = ("archiver-0", "archiver-1")
        retries = {name: retries_logged(self.folder / f"{name}.log") for name in replicas}
        rows = [
            Component(
                "archivers",
                faults["archivers"],
                sum(retries.values()),
                sum(self.sigkills.values()),
                note="both replicas, through one fault proxy",
            ),
        ]
        for name in replicas:
            restarted = self.pids_mid.get(name) != self.pids_end.get(name)
            rows.append(
                Component(
                    f"  {name}",
                    retries=retries[name],
                    sigkills=self.sigkills[name],
                    rss_mid=self.rss_mid.get(name),
                    rss_end=self.rss_end.get(name),
                    note="restarted since the first RSS" if restarted else "",
                )
            )
        rows.append(Component("archive", records=archived, lost=archive_lost, doubled=archive_doubled))
        rows.append(
            Component(
                "serve",
                faults=faults["serve"],
                retries=retries_logged(self.folder / "serve.log"),
                rss_mid=self.rss_mid.get("serve"),
                rss_end=self.rss_end.get("serve"),
            )
        )
        for name, faults_of in (("serve-reader", None), ("consumer", "consumer")):
            check = readers[name]
            notes = [] if check.same_values else ["VALUES DIFFER"]
            notes += [f"p{p}: expected {want}, got {got}" for p, want, got in check.gaps[:3]]
            rows.append(
                Component(
                    name,
                    faults=faults[faults_of] if faults_of else {},
                    retries=retries_logged(self.folder / f"{name}.log") if faults_of else None,
                    records=check.records,
                    lost=check.lost,
                    doubled=check.doubled,
                    rss_mid=self.rss_mid.get(name),
                    rss_end=self.rss_end.get(name),
                    note=" ".join(notes),
                )
            )
        rows.append(
            Component(
                "replay",
                faults=faults["replay"],
                retries=retries_logged(replay["log"]),
                records=replay["records"],
                lost=replay["lost"],
                doubled=replay["doubled"],
                sigkills=replay["kills"],
                note=f"exit {replay['code']}, {replay['seconds']:.0f} s",
            )
        )
        for name in ("proxies", "producer"):
            rows.append(Component(name, rss_mid=self.rss_mid.get(name), rss_end=self.rss_end.get(name)))
        produced = figures["produced"]
        verify = figures["verify"]
        total = {k: sum(c[k] for c in faults.values()) for k in next(iter(faults.values()))}
        injected = sum(v for k, v in total.items() if k != "requests")
        print(f"\n=== soak report: {minutes:g} min, topic {self.topic} ({PARTITIONS} partitions) ===")
        print(
            f"machine: {os.cpu_count()} cores, load average {self.load[0]:.1f} at the start, "
            f"{os.getloadavg()[0]:.1f} at the end (1 min)"
        )
        print(
            f"produced {produced.get('sent')} records ({produced.get('delivered')} acknowledged, failed "
            f"{produced.get('failed')}); topic ends {figures['ends']}"
        )
        print(
            f"object-store requests {total['requests']}, faults injected {injected} "
            f"({injected / max(1, total['requests']):.1%}): "
            + ", ".join(f"{k} {v}" for k, v in total.items() if k != "requests")
        )
        print(
            f"archiver SIGKILLs {sum(self.sigkills.values())}, broker SIGKILL+restarts {self.broker_restarts}, "
            f"unexpected exits {self.exits or 'none'}, archiver exit codes on SIGTERM {figures['codes']}"
        )
        print(
            f"exits at start-up while the broker restarted ('{NO_KAFKA}', restarted as a pod would be): "
            f"{self.no_kafka_exits or 'none'}"
        )
        verdict = "clean" if verify.returncode == 0 else f"FAILED (exit {verify.returncode})"
        print(f"verify: {verdict}: {(verify.stdout.strip().splitlines() or [''])[-1]}")
        print()
        print(table(rows, mid_label))
        print("\nRSS MB at each minute (processes never restarted):")
        for name, samples in self.timeline.items():
            if self.pids_mid.get(name) == self.pids_end.get(name):
                print(f"  {name:<13} " + " ".join(cell(mb) for mb in samples))
        ok = (
            verify.returncode == 0
            and archive_lost == archive_doubled == 0
            and all(check.ok for check in readers.values())
            and replay["code"] == 0
            and replay["lost"] == replay["doubled"] == 0
            and not self.exits
            and not produced.get("failed")
        )
        print(f"\nresult: {'PASS' if ok else 'FAIL'}", flush=True)
        return ok

    def stop_all(self) -> None:
        """Kill whatever still runs (after a failure)."""
        for proc in self.roles.values():
            if proc.running():
                proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run (default 10)")
    parser.add_argument("--seed", type=int, default=2026, help="seeds the faults, kills and their timing")
    parser.add_argument(
        "--kill-every",
        type=float,
        default=KILL_EVERY,
        help=f"seconds between archiver SIGKILLs (default {KILL_EVERY:g})",
    )
    args = parser.parse_args()
    for name, value in (("--minutes", args.minutes), ("--kill-every", args.kill_every)):
        if value <= 0:
            print(f"error: {name} must be above 0, not {value:g}", file=sys.stderr)
            return 2
    # A SIGTERM (a CI timeout, kill) unwinds like Ctrl-C, so the servers and processes started are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logs = Path(tempfile.mkdtemp(prefix="pyrostore-soak-"))  # kept after the run, unlike the stack's folder
    with running_stack("soak") as (_, stack):
        soak = Soak(logs, stack, args.minutes, args.seed, args.kill_every)
        try:
            soak.start()
            soak.run()
            figures = soak.finish()
        finally:
            soak.stop_all()
        return 0 if soak.report(figures, args.minutes) else 1


if __name__ == "__main__":
    sys.exit(main())
