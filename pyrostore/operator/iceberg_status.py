"""What the status refresh reads of a TopicArchive's Iceberg table: the sync state of its current snapshot.

The catalog is opened as the sync pod opens it (:func:`pyrostore.operator.iceberg.catalog_settings`), with the
archive's S3 settings and credentials for the table's metadata files, read into memory for one refresh. pyiceberg
is imported only here and only when a TopicArchive has ``spec.iceberg``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from pyrostore.errors import PyrostoreError
from pyrostore.operator import iceberg
from pyrostore.operator.status import read_secret, store_options, without_secrets
from pyrostore.store.s3 import store_region


def observe_iceberg(api: client.ApiClient, namespace: str, body: Mapping) -> dict[str, Any]:
    """``status.iceberg`` of a TopicArchive: its table's last sync, or the one line saying why it is unknown."""
    spec = body["spec"]
    secrets: dict[str, str] = {}
    try:
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        from pyrostore.iceberg.catalog import catalog_properties, open_catalog, parse_table

        storage = spec["storage"]
        if "credentialsSecret" in storage:
            secrets |= read_secret(api, namespace, storage["credentialsSecret"]["name"])
        options = store_options(storage, secrets)
        if ref := spec["iceberg"].get("catalogSecret"):
            secrets |= read_secret(api, namespace, ref["name"])
        name, given = iceberg.catalog_settings(body, secrets)
        secrets |= iceberg.sensitive(given)
        properties = catalog_properties(None, given, storage["url"], options, store_region(None, {}))
        with open_catalog(name, None, properties) as catalog:  # closed: a SQL catalog holds a connection pool
            try:
                table = catalog.load_table(parse_table(spec["iceberg"]["table"]))
            except (NoSuchTableError, NoSuchNamespaceError):
                return iceberg.iceberg_status(body, None)
            return iceberg.iceberg_status(body, synced_snapshot(table, spec["kafka"]["topic"]))
    except ImportError as exc:
        return iceberg.iceberg_status(body, None, f"the operator's image lacks the iceberg extra: {exc}")
    except (PyrostoreError, OSError, ValueError) as exc:
        return iceberg.iceberg_status(body, None, without_secrets(secrets, str(exc)))
    except Exception as exc:  # the catalog's own errors (SQLAlchemy, REST, Glue): reported, never raised
        return iceberg.iceberg_status(body, None, without_secrets(secrets, f"{type(exc).__name__}: {exc}"))


def synced_snapshot(table: Any, topic: str) -> dict[str, Any] | None:
    """The current snapshot of a synced table: its id, when it was made, the records the table holds and, per
    partition, the archive commit and the offset it is synced up to. None before the first sync."""
    from pyrostore.iceberg.sync import table_state

    snapshot = table.current_snapshot()
    if snapshot is None:
        return None
    state = table_state(table, topic)
    summary = snapshot.summary.additional_properties if snapshot.summary else {}
    return {
        "snapshotId": snapshot.snapshot_id,
        "syncedAt": datetime.fromtimestamp(snapshot.timestamp_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "records": int(summary.get("total-records", 0)),
        "partitions": [{"partition": p, "commit": s.seq, "offset": s.end} for p, s in sorted(state.partitions.items())],
    }
