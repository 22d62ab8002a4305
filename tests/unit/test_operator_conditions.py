"""Ready, Reconciling and Stalled, and what kstatus makes of them (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime

from pyrostore.operator.conditions import (
    ArchiveObservation,
    PartitionState,
    archive_conditions,
    kstatus,
    percent,
    replay_blocked,
    replay_conditions,
    replay_phase,
    stamp,
)


def _by_type(conditions: list[dict]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in conditions}


def _body(generation: int, observed: int | None, conditions: list[dict], deleting: bool = False) -> dict:
    meta = {"generation": generation, **({"deletionTimestamp": "2026-11-24T00:00:00Z"} if deleting else {})}
    status = {"conditions": conditions, **({"observedGeneration": observed} if observed is not None else {})}
    return {"metadata": meta, "status": status}


def test_partition_lag_and_loss():
    assert PartitionState(0, None, 5, 20).lag == 15
    assert PartitionState(0, 18, 5, 20).lag == 2
    assert PartitionState(0, 20, 5, 20).lag == 0
    assert PartitionState(0, 3, 5, 20).lost
    assert not PartitionState(0, None, 5, 20).lost


def test_archive_conditions_follow_the_archive():
    starting = ArchiveObservation([PartitionState(0, None, 0, 10), PartitionState(1, 10, 0, 10)])
    assert _by_type(archive_conditions(False, starting)) == {
        "Ready": ("False", "Starting"),
        "Reconciling": ("True", "Starting"),
        "Stalled": ("False", "Archiving"),
    }
    caught_up = ArchiveObservation([PartitionState(0, 10, 0, 10), PartitionState(1, 9, 0, 10)])
    conditions = archive_conditions(False, caught_up)
    assert _by_type(conditions)["Ready"] == ("True", "Archiving")
    assert _by_type(conditions)["Reconciling"][0] == "False"
    assert "1 record(s) not archived" in conditions[0]["message"]
    risky = ArchiveObservation([PartitionState(0, 2, 0, 10, at_risk=True)])
    assert _by_type(archive_conditions(False, risky))["Ready"] == ("False", "AtRisk")
    assert _by_type(archive_conditions(False, risky))["Reconciling"] == ("True", "AtRisk")
    not_started_but_risky = ArchiveObservation([PartitionState(0, None, 0, 10, at_risk=True)])
    assert _by_type(archive_conditions(False, not_started_but_risky))["Ready"] == ("False", "AtRisk")
    lost = ArchiveObservation([PartitionState(0, 2, 5, 10)])
    assert _by_type(archive_conditions(False, lost))["Stalled"] == ("True", "HistoryLost")
    broken = ArchiveObservation(error_reason="StorageUnavailable", error="access denied")
    assert _by_type(archive_conditions(False, broken))["Stalled"] == ("True", "StorageUnavailable")
    assert _by_type(archive_conditions(True, caught_up))["Ready"] == ("True", "Suspended")


def test_stamp_keeps_transition_time_while_status_holds():
    first = datetime(2026, 11, 24, 10, tzinfo=UTC)
    later = datetime(2026, 11, 24, 11, tzinfo=UTC)
    seen = ArchiveObservation([PartitionState(0, 10, 0, 10)])
    old = stamp(archive_conditions(False, seen), None, 1, first)
    assert {c["lastTransitionTime"] for c in old} == {"2026-11-24T10:00:00Z"}
    again = stamp(archive_conditions(False, seen), old, 2, later)
    assert {c["lastTransitionTime"] for c in again} == {"2026-11-24T10:00:00Z"}
    assert {c["observedGeneration"] for c in again} == {2}
    behind = ArchiveObservation([PartitionState(0, None, 0, 10)])
    flipped = {c["type"]: c["lastTransitionTime"] for c in stamp(archive_conditions(False, behind), again, 2, later)}
    assert flipped == {
        "Ready": "2026-11-24T11:00:00Z",
        "Reconciling": "2026-11-24T11:00:00Z",
        "Stalled": "2026-11-24T10:00:00Z",
    }


def test_kstatus_reads_the_conditions_in_its_order():
    starting = stamp(archive_conditions(False, ArchiveObservation([PartitionState(0, None, 0, 1)])), None, 1)
    ready = stamp(archive_conditions(False, ArchiveObservation([PartitionState(0, 1, 0, 1)])), None, 1)
    stalled = stamp(archive_conditions(False, ArchiveObservation(error_reason="TopicNotFound")), None, 1)
    assert kstatus(_body(1, 1, starting)) == "InProgress"
    assert kstatus(_body(1, 1, ready)) == "Current"
    assert kstatus(_body(2, 1, ready)) == "InProgress"  # a new generation not yet observed
    assert kstatus(_body(1, 1, stalled)) == "Failed"
    assert kstatus(_body(1, 1, ready, deleting=True)) == "Terminating"


def test_replay_phase_follows_the_job():
    assert replay_phase(None)[0] == "Pending"
    assert replay_phase({"status": {}})[0] == "Pending"
    assert replay_phase({"status": {"startTime": "t", "active": 2}})[0] == "Running"
    assert replay_phase({"status": {}}, records_done=5)[0] == "Running"
    complete = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert replay_phase(complete)[0] == "Succeeded"
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]}}
    assert replay_phase(failed) == ("Failed", "BackoffLimitExceeded")


def test_replay_conditions_and_kstatus_per_phase():
    expected = {"Pending": "InProgress", "Running": "InProgress", "Succeeded": "Current", "Failed": "Failed"}
    for phase, verdict in expected.items():
        assert kstatus(_body(1, 1, replay_conditions(phase, ""))) == verdict


def test_a_replay_job_without_its_topic_archive_is_stalled_until_it_appears():
    blocked = replay_blocked("TopicArchiveNotFound", "spec.serve.topicArchive names TopicArchive 'late'")
    assert _by_type(blocked) == {
        "Ready": ("False", "TopicArchiveNotFound"),
        "Reconciling": ("False", "TopicArchiveNotFound"),
        "Stalled": ("True", "TopicArchiveNotFound"),
    }
    assert kstatus(_body(1, 1, blocked)) == "Failed"


def test_percent():
    assert percent(0, 0, False) == "0%"
    assert percent(0, 0, True) == "100%"
    assert percent(50, 200, False) == "25%"
    assert percent(200, 200, False) == "100%"
