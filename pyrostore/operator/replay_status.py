"""A ReplayJob's progress, read the way ``pyrostore replay`` records it: its plan and its checkpoints."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaException
from kubernetes import client

from pyrostore.errors import PyrostoreError
from pyrostore.operator import conditions, manifests, status

log = logging.getLogger("pyrostore.operator")


def replay_options(body: Mapping, store_options: dict[str, str], kafka: dict[str, str]) -> Any:
    """The ``ReplayOptions`` the Job's pods run with (worker split aside), for reading the whole progress."""
    from pyrostore.replay import ReplayOptions

    return ReplayOptions(
        **{**manifests.replay_settings(body), "bootstrap_servers": kafka["bootstrap.servers"]},
        store_options=store_options,
        kafka_properties={k: v for k, v in kafka.items() if k != "bootstrap.servers"},
    )


def read_progress(api: client.ApiClient, body: Mapping) -> dict[str, Any] | None:
    """``status.progress`` of a ReplayJob, or None while it cannot be read (the reason is logged, not raised)."""
    from pyrostore.replay import replay_progress

    spec, namespace = body["spec"], body["metadata"]["namespace"]
    storage = spec["source"]["storage"]
    try:
        secret = (
            status.read_secret(api, namespace, storage["credentialsSecret"]["name"])
            if "credentialsSecret" in storage
            else {}
        )
        kafka = status.resource_kafka_config(api, namespace, spec["target"])
        progress = replay_progress(replay_options(body, status.store_options(storage, secret), kafka))
    except (PyrostoreError, KafkaException, ValueError) as exc:
        log.warning("progress of ReplayJob %s/%s is unknown: %s", namespace, body["metadata"]["name"], exc)
        return None
    return {
        "recordsTotal": progress.records_total,
        "recordsDone": progress.records_done,
        "bytesTotal": progress.bytes_total,
        "bytesDone": progress.bytes_done,
        "percent": conditions.percent(progress.records_done, progress.records_total, progress.finished),
    }
