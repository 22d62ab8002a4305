"""Pure status logic: conditions Ready, Reconciling and Stalled as kstatus, Flux and Argo CD read them.

Conditions keep their ``lastTransitionTime`` while their status stays the same. :func:`kstatus` restates the
generic rules of sigs.k8s.io/cli-utils' kstatus, so tests can assert what Flux would conclude (the tests check
it against kstatus's own code, see e2e/stack/health.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Condition = dict[str, Any]

READY, RECONCILING, STALLED = "Ready", "Reconciling", "Stalled"


@dataclass(frozen=True)
class PartitionState:
    """One partition as the status timer saw it: the archive's next offset and Kafka's watermarks."""

    partition: int
    archived_offset: int | None  # the newest commit's next_offset; None before the first commit
    log_start: int
    high_watermark: int
    at_risk: bool = False  # unarchived records are close to Kafka's retention
    records: int = 0  # records the archive holds

    @property
    def lag(self) -> int:
        """Records Kafka holds (or held) that the archive does not have yet."""
        done = self.log_start if self.archived_offset is None else self.archived_offset
        return max(self.high_watermark - done, 0)

    @property
    def lost(self) -> bool:
        """Kafka deleted records past the archive's end before they were archived."""
        return self.archived_offset is not None and self.archived_offset < self.log_start

    def as_status(self) -> dict[str, Any]:
        """The entry of ``status.partitions`` (without ``archivedOffset`` before the first commit)."""
        entry = {
            "partition": self.partition,
            "logStartOffset": self.log_start,
            "highWatermark": self.high_watermark,
            "lag": self.lag,
            "atRisk": self.at_risk,
            "archivedRecords": self.records,
        }
        if self.archived_offset is not None:
            entry["archivedOffset"] = self.archived_offset
        return entry


@dataclass(frozen=True)
class ArchiveObservation:
    """What one status refresh of a TopicArchive found, or why it could not look."""

    partitions: list[PartitionState] = field(default_factory=list)
    error_reason: str | None = None  # KafkaUnavailable, TopicNotFound, StorageUnavailable, ...
    error: str | None = None


def _condition(kind: str, true: bool, reason: str, message: str) -> Condition:
    return {"type": kind, "status": "True" if true else "False", "reason": reason, "message": message}


def _three(ready: tuple[bool, str, str], reconciling: tuple[bool, str, str], stalled: tuple[bool, str, str]):
    return [_condition(READY, *ready), _condition(RECONCILING, *reconciling), _condition(STALLED, *stalled)]


def _names(partitions: Sequence[PartitionState]) -> str:
    return ", ".join(str(p.partition) for p in partitions)


def archive_conditions(suspended: bool, seen: ArchiveObservation) -> list[Condition]:
    """Ready, Reconciling and Stalled of a TopicArchive (without times or generations)."""
    quiet = (False, "Archiving", "")
    if seen.error_reason:
        return _three(
            (False, seen.error_reason, seen.error or ""),
            (False, seen.error_reason, ""),
            (True, seen.error_reason, seen.error or ""),
        )
    if lost := [p for p in seen.partitions if p.lost]:
        message = "; ".join(
            f"partition {p.partition}: Kafka deleted offsets {p.archived_offset}..{p.log_start - 1} unarchived"
            for p in lost
        )
        return _three((False, "HistoryLost", message), (False, "HistoryLost", ""), (True, "HistoryLost", message))
    if suspended:  # what was asked for: kstatus reads it as Current, Argo CD's script as Suspended (its reason)
        message = "the archiver is scaled to zero (spec.suspend)"
        return _three((True, "Suspended", message), (False, "Suspended", ""), (False, "Suspended", ""))
    # At risk comes first: an archiver that has not started yet is no excuse for records about to expire.
    if risky := [p for p in seen.partitions if p.at_risk]:
        message = f"partition(s) {_names(risky)}: unarchived records are close to the topic's retention"
        return _three((False, "AtRisk", message), (True, "AtRisk", message), quiet)
    if waiting := [p for p in seen.partitions if p.archived_offset is None]:
        message = f"waiting for the first archive commit of partition(s) {_names(waiting)}"
        return _three((False, "Starting", message), (True, "Starting", message), quiet)
    lag = sum(p.lag for p in seen.partitions)
    message = f"archiving {len(seen.partitions)} partition(s); {lag} record(s) not archived yet"
    return _three((True, "Archiving", message), (False, "Archiving", ""), quiet)


PHASES = ("Pending", "Running", "Succeeded", "Failed")


def replay_conditions(phase: str, message: str) -> list[Condition]:
    """Ready, Reconciling and Stalled of a ReplayJob in ``phase``."""
    if phase == "Succeeded":
        return _three((True, "Succeeded", message), (False, "Succeeded", ""), (False, "Succeeded", ""))
    if phase == "Failed":
        return _three((False, "Failed", message), (False, "Failed", ""), (True, "Failed", message))
    return _three((False, phase, message), (True, phase, message), (False, phase, ""))


def replay_blocked(reason: str, message: str) -> list[Condition]:
    """A ReplayJob whose Job cannot be made yet (a serve-mode ReplayJob's TopicArchive is missing): Stalled, so
    kstatus reports it Failed until the cause goes away and the Job is made."""
    return _three((False, reason, message), (False, reason, ""), (True, reason, message))


def _job_condition(job: Mapping, kind: str) -> Mapping | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition
    return None


def replay_phase(job: Mapping | None, records_done: int = 0) -> tuple[str, str]:
    """The ReplayJob's phase and a message, from its Job (as the Job controller reports it) and progress."""
    if job is None:
        return "Pending", "the Job is not created yet"
    if done := _job_condition(job, "Complete"):
        return "Succeeded", done.get("message") or "the replay finished"
    if failed := _job_condition(job, "Failed"):
        return "Failed", failed.get("message") or failed.get("reason") or "the Job failed"
    status = job.get("status") or {}
    if status.get("startTime") or status.get("active") or records_done:
        return "Running", f"{status.get('active', 0)} pod(s) active"
    return "Pending", "waiting for the Job's pods to start"


def percent(done: int, total: int, finished: bool) -> str:
    """Progress as the printer column shows it: ``42%``."""
    if finished or (total and done >= total):
        return "100%"
    return f"{int(100 * done / total)}%" if total else "0%"


def stamp(
    new: list[Condition], old: Sequence[Mapping] | None, generation: int, now: datetime | None = None
) -> list[Condition]:
    """Add ``observedGeneration`` and ``lastTransitionTime`` to conditions, keeping the old time when unchanged."""
    moment = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    previous = {c.get("type"): c for c in old or []}
    stamped = []
    for condition in new:
        before = previous.get(condition["type"])
        kept = before is not None and before.get("status") == condition["status"] and before.get("lastTransitionTime")
        stamped.append({**condition, "observedGeneration": generation, "lastTransitionTime": kept or moment})
    return stamped


def kstatus(body: Mapping) -> str:
    """The status kstatus computes for a custom resource: InProgress, Failed, Current or Terminating.

    Its order: a deletion; an unobserved generation; the first condition that is Reconciling=True or
    Stalled=True; then the Ready condition (True is Current, False or Unknown InProgress); Current without one.
    """
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating"
    observed = status.get("observedGeneration")
    if observed is not None and observed != meta.get("generation"):
        return "InProgress"
    conditions = status.get("conditions") or []
    for condition in conditions:
        if condition.get("status") == "True" and condition.get("type") in (RECONCILING, STALLED):
            return "InProgress" if condition["type"] == RECONCILING else "Failed"
    ready = next((c.get("status") for c in conditions if c.get("type") == READY), None)
    return "InProgress" if ready in ("False", "Unknown") else "Current"
