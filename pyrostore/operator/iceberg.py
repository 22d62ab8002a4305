"""Pure builders of a TopicArchive's Iceberg sync (``spec.iceberg``): a Deployment running ``pyrostore iceberg
sync --follow`` for the archived topic, the catalog configuration it is given, and what the status says.

The catalog is configured the way pyiceberg is everywhere: a ``.pyiceberg.yaml`` file, here a Secret's key
mounted into the pod (``PYICEBERG_HOME`` points at it), naming the catalog ``spec.iceberg.catalog``; or, for a
catalog without credentials (a REST catalog on a trusted network), ``spec.iceberg.catalogUri``. The operator
reads the same file to report the table's sync state, so both always agree on the catalog.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import yaml

from pyrostore.errors import InvalidSetting
from pyrostore.iceberg import URI_CATALOG_NAME
from pyrostore.operator.manifests import (
    ARCHIVE_LABEL,
    Manifest,
    component_labels,
    flag_pairs,
    owned,
    pod_spec,
    pod_wiring,
    selector_labels,
    workload_container,
)
from pyrostore.operator.settings import OperatorSettings

ICEBERG_COMPONENT = "iceberg"
ICEBERG_APP = f"pyrostore-{ICEBERG_COMPONENT}"  # app.kubernetes.io/name of the sync Deployment and its pods
CATALOG_DIR = "/etc/pyrostore/iceberg"
CATALOG_FILE = ".pyiceberg.yaml"  # the name pyiceberg looks for in PYICEBERG_HOME
DEFAULT_CATALOG = "default"
DEFAULT_INTERVAL = "60s"


def sync_name(archive_name: str) -> str:
    """The name of the sync Deployment of a TopicArchive."""
    return f"{archive_name}-{ICEBERG_COMPONENT}"


def syncing(body: Mapping) -> bool:
    """Whether the TopicArchive asks for an Iceberg table."""
    return body["spec"].get("iceberg") is not None


def _iceberg_spec(body: Mapping) -> Mapping[str, Any]:
    return body["spec"].get("iceberg") or {}


def catalog_name(body: Mapping) -> str:
    """The catalog's name in the configuration file (``spec.iceberg.catalog``)."""
    return str(_iceberg_spec(body).get("catalog") or DEFAULT_CATALOG)


def catalog_key(body: Mapping) -> str:
    """The key of the catalog Secret holding the configuration file."""
    return str((_iceberg_spec(body).get("catalogSecret") or {}).get("key") or CATALOG_FILE)


def sync_command(body: Mapping) -> list[str]:
    """The sync container's command: ``pyrostore iceberg sync --follow`` with the TopicArchive's settings."""
    spec, iceberg = body["spec"], _iceberg_spec(body)
    storage = spec["storage"]
    command = ["pyrostore", "iceberg", "sync", storage["url"], "--table", iceberg["table"]]
    command += ["--topic", spec["kafka"]["topic"]]
    if "catalogUri" in iceberg:
        command += ["--catalog-uri", iceberg["catalogUri"]]
    else:
        command += ["--catalog", catalog_name(body)]
    command += ["--follow", "--interval", iceberg.get("interval", DEFAULT_INTERVAL)]
    return command + flag_pairs("-p", iceberg.get("properties")) + flag_pairs("-o", storage.get("options"))


def sync_deployment(body: Mapping, settings: OperatorSettings) -> Manifest:
    """The Deployment of ``spec.iceberg``: one pod syncing the table every interval.

    ``suspend`` does not stop it (it only reads the archive; nothing new arrives while archiving is paused). One
    replica, replaced with ``Recreate``: two syncs at once would be safe (the catalog takes one commit and
    refuses the other) but noisy.
    """
    spec, iceberg = body["spec"], _iceberg_spec(body)
    labels = component_labels(ICEBERG_COMPONENT, body["metadata"]["name"], ARCHIVE_LABEL)
    env_from, volumes, mounts, _ = pod_wiring(spec["storage"], {})
    if secret := iceberg.get("catalogSecret"):
        items = [{"key": catalog_key(body), "path": CATALOG_FILE}]
        volumes.append({"name": "iceberg-catalog", "secret": {"secretName": secret["name"], "items": items}})
        mounts.append({"name": "iceberg-catalog", "mountPath": CATALOG_DIR, "readOnly": True})
    resources = {"resources": iceberg.get("resources")}
    sync = workload_container(ICEBERG_COMPONENT, sync_command(body), settings, resources, env_from, mounts)
    if "catalogSecret" in iceberg:
        sync["env"] = [{"name": "PYICEBERG_HOME", "value": CATALOG_DIR}]
    return owned("apps/v1", "Deployment", sync_name(body["metadata"]["name"]), body, labels) | {
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector_labels(labels)},
            "strategy": {"type": "Recreate"},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec(sync, volumes, settings)},
        },
    }


def catalog_settings(body: Mapping, secret: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """The catalog's name and its properties as the sync pod sees them: those the configuration file in the
    catalog Secret gives the named catalog (or the URI), then ``spec.iceberg.properties``. Raises InvalidSetting
    naming the Secret's key (never quoting its content) when the file does not configure that catalog."""
    iceberg = _iceberg_spec(body)
    extra = {str(k): str(v) for k, v in (iceberg.get("properties") or {}).items()}
    if "catalogUri" in iceberg:
        return URI_CATALOG_NAME, {"uri": iceberg["catalogUri"], **extra}
    name, key = catalog_name(body), catalog_key(body)
    where = f"Secret {iceberg['catalogSecret']['name']} key {key}"
    if key not in secret:
        raise InvalidSetting(f"{where} is missing")
    try:
        config = yaml.safe_load(secret[key]) or {}
    except yaml.YAMLError:
        raise InvalidSetting(f"{where} is not YAML") from None
    catalogs = config.get("catalog") if isinstance(config, Mapping) else None
    found = catalogs.get(name.lower()) if isinstance(catalogs, Mapping) else None
    if not isinstance(found, Mapping):
        raise InvalidSetting(f"{where} configures no catalog {name!r} (catalog: {{{name}: {{...}}}})")
    return name, {str(k): str(v) for k, v in found.items()} | extra


_SENSITIVE = ("password", "secret", "token", "credential", "key-id", "access-key")


def sensitive(properties: Mapping[str, str]) -> dict[str, str]:
    """The catalog properties whose values must never be shown (passwords, keys, tokens, a URI's password)."""
    found = {key: value for key, value in properties.items() if any(word in key.lower() for word in _SENSITIVE)}
    for key, value in properties.items():
        if "://" in value and (password := urlsplit(value).password):
            found[f"{key}.password"] = password
    return found


SNAPSHOT_FIELDS = ("snapshotId", "syncedAt", "records", "partitions")


def iceberg_status(body: Mapping, snapshot: Mapping[str, Any] | None, error: str | None = None) -> Manifest:
    """``status.iceberg``: the table, and from its current snapshot (None: not synced yet) when and up to which
    archive commit of each partition it was synced; or why it could not be read. Every field is present, None
    when unknown, so that a status merge patch removes what an earlier refresh wrote."""
    status: Manifest = {"table": _iceberg_spec(body)["table"], "error": error}
    return status | dict.fromkeys(SNAPSHOT_FIELDS) | dict(snapshot or {})
