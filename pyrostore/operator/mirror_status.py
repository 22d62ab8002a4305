"""What the status refresh reads of a TopicArchive's mirrors: per partition, each side's newest commit, hence how
many commits each target lacks and since when.

The target is opened with the mirror's credentials Secret, read into memory for one refresh (S3's ``AWS_*``
keys become store options, as for the archive's own store); a GCS target is read with the operator's own
credentials, as the archive's GCS store is (the key file's path exists only in the pods).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from pyrostore.archive import Archive
from pyrostore.errors import PyrostoreError, TopicNotFound
from pyrostore.mirror.decisions import check_common
from pyrostore.mirror.partition import newest_commit, read_commit_at
from pyrostore.operator.mirrors import mirror_specs, mirror_status, partition_lag
from pyrostore.operator.status import open_resource_store, read_secret, store_options, without_secrets
from pyrostore.store import ObjectStore, open_existing_store


def observe_mirrors(api: client.ApiClient, namespace: str, body: Mapping) -> list[dict[str, Any]]:
    """``status.mirrors`` of a TopicArchive: each mirror's lag, or the one line saying why it is unknown."""
    spec = body["spec"]
    try:
        source = open_resource_store(api, namespace, spec["storage"])
    except (PyrostoreError, OSError, ValueError) as exc:
        return [mirror_status(m, None, f"the archive: {without_secrets({}, str(exc))}") for m in mirror_specs(body)]
    try:
        return [_observe(api, namespace, source, spec["kafka"]["topic"], m) for m in mirror_specs(body)]
    finally:
        source.close()


def _observe(api: client.ApiClient, namespace: str, source: ObjectStore, topic: str, mirror: Mapping) -> dict:
    secret: dict[str, str] = {}
    try:
        if ref := mirror.get("credentialsSecret"):
            secret = read_secret(api, namespace, ref["name"])
        # Opening never creates anything: a folder target must not appear on the operator's own disk.
        target = open_existing_store(mirror["url"], **store_options(mirror, secret))
        try:
            return mirror_status(mirror, mirror_lags(source, target, topic))
        finally:
            target.close()
    except (PyrostoreError, OSError, ValueError) as exc:
        # A key id is no secret (S3 errors name it), and masking it would garble any name that contains it.
        hidden = {key: value for key, value in secret.items() if key != "AWS_ACCESS_KEY_ID"}
        return mirror_status(mirror, None, without_secrets(hidden, str(exc)))


def mirror_lags(source: ObjectStore, target: ObjectStore, topic: str) -> list[tuple[int, float]]:
    """Per partition of the source's archive of ``topic``: the commits ``target`` lacks and the age in seconds of
    the oldest of them (none before the source has a commit). Raises ArchivesDiverged when the target holds a
    commit the source does not (the mirror stops on it too), StoreError."""
    # The target's partitions too: one the source lacks is a diverged copy, and reading it shows bad credentials
    # before the archive has its first commit.
    partitions = sorted({*_partitions(source, topic), *_partitions(target, topic)})
    now = datetime.now(UTC)
    lags = []
    for partition in partitions:
        newest, copied = newest_commit(source, topic, partition), newest_commit(target, topic, partition)
        if copied is not None:
            check_common(topic, partition, copied, read_commit_at(source, topic, partition, copied.seq))
        next_seq = copied.seq + 1 if copied is not None else 0
        missing = read_commit_at(source, topic, partition, next_seq) if newest and newest.seq >= next_seq else None
        lags.append(partition_lag(newest, copied, missing, now))
    return lags


def _partitions(store: ObjectStore, topic: str) -> list[int]:
    try:
        return Archive(store).partitions(topic)
    except TopicNotFound:
        return []
