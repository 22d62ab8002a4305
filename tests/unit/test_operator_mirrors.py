"""The mirrors of a TopicArchive (``spec.mirrors``): their Deployments, which ones go, and their lag (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pyrostore.index.commits import Commit
from pyrostore.operator.manifests import STORAGE_SECRET_DIR, archiver_statefulset, drifted
from pyrostore.operator.mirrors import (
    MIRROR_SECRET_DIR,
    mirror_command,
    mirror_deployment,
    mirror_deployment_name,
    mirror_of,
    mirror_status,
    mirrors_selector,
    partition_lag,
    stale_mirrors,
    target_options,
)
from pyrostore.operator.settings import OperatorSettings

SETTINGS = OperatorSettings(image="img:1", image_pull_policy="Always", service_account="archiver")
EU = {
    "name": "eu",
    "url": "s3://copy/p",
    "options": {"endpoint_url": "https://s3.eu"},
    "credentialsSecret": {"name": "eu-keys"},
}
US = {
    "name": "us",
    "url": "gs://copy-us/p",
    "credentialsSecret": {"name": "us-key", "key": "sa.json"},
    "rateLimit": "50MB",
}


def _archive(*mirrors: dict, name: str = "orders", **spec: object) -> dict:
    return {
        "kind": "TopicArchive",
        "metadata": {"name": name, "namespace": "team-a", "uid": "u-1", "generation": 1},
        "spec": {
            "kafka": {"bootstrapServers": "k:9092", "topic": "orders.v1"},
            "storage": {"url": "s3://b/p", "options": {"region": "r"}, "credentialsSecret": {"name": "creds"}},
            "mirrors": list(mirrors),
            **spec,
        },
    }


def _pod(body: dict, mirror: dict) -> dict:
    return mirror_deployment(body, mirror, SETTINGS)["spec"]["template"]["spec"]


def test_the_mirror_follows_the_archive_into_its_store_with_each_sides_options():
    assert mirror_command(_archive(EU), EU) == [
        "pyrostore", "mirror", "s3://b/p", "s3://copy/p", "--topic", "orders.v1",
        "--follow", "--interval", "10s", "--metrics-port", "9102", "--log-format", "json",
        "--source-option", "region=r",
        "--target-option", f"credentials_dir={MIRROR_SECRET_DIR}", "--target-option", "endpoint_url=https://s3.eu",
    ]  # fmt: skip
    command = mirror_command(_archive(US), US | {"interval": "1m"})
    assert command[command.index("--interval") + 1] == "1m"
    assert command[command.index("--rate-limit") + 1] == "50MB"
    assert command[-2:] == ["--target-option", f"credentials_file={MIRROR_SECRET_DIR}/sa.json"]


def test_the_target_names_its_mounted_secret_by_option_by_backend():
    assert target_options({"name": "m", "url": "gs://b", "credentialsSecret": {"name": "s"}}) == {
        "credentials_file": f"{MIRROR_SECRET_DIR}/key.json"
    }
    assert target_options({"name": "m", "url": "file:///copy", "credentialsSecret": {"name": "s"}}) == {}
    assert target_options({"name": "m", "url": "s3://b", "options": {"region": "x"}}) == {"region": "x"}


def test_the_source_credentials_are_the_environment_and_the_targets_a_mounted_secret_only():
    pod = _pod(_archive(EU), EU)
    container = pod["containers"][0]
    assert container["envFrom"] == [{"secretRef": {"name": "creds"}}]  # the archive's, as the archiver's
    assert "env" not in container
    assert {"name": "mirror-credentials", "secret": {"secretName": "eu-keys"}} in pod["volumes"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"tmp": "/tmp", "storage-credentials": STORAGE_SECRET_DIR, "mirror-credentials": MIRROR_SECRET_DIR}
    assert all(m.get("readOnly") for m in container["volumeMounts"] if m["name"] != "tmp")
    anonymous = _pod(_archive(EU), {"name": "open", "url": "gs://public/p"})
    assert [v["name"] for v in anonymous["volumes"]] == ["tmp", "storage-credentials"]


def test_one_recreated_replica_per_mirror_owned_labelled_and_selected_by_mirror():
    body = _archive(EU, US)
    eu, us = (mirror_deployment(body, m, SETTINGS) for m in (EU, US))
    assert (eu["metadata"]["name"], us["metadata"]["name"]) == ("orders-mirror-eu", "orders-mirror-us")
    assert eu["spec"]["replicas"] == 1 and eu["spec"]["strategy"] == {"type": "Recreate"}
    assert eu["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert eu["metadata"]["labels"]["pyrostore.io/mirror"] == "eu"
    assert eu["metadata"]["labels"]["app.kubernetes.io/name"] == "pyrostore-mirror"
    selectors = [d["spec"]["selector"]["matchLabels"] for d in (eu, us)]
    assert selectors[0] != selectors[1]  # two mirrors' pods never match each other's Deployment
    archiver = archiver_statefulset(body, SETTINGS)["spec"]["selector"]["matchLabels"]
    for deployment, selector in zip((eu, us), selectors, strict=True):
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items() and not archiver.items() <= pod_labels.items()
    assert mirrors_selector("orders") == "app.kubernetes.io/name=pyrostore-mirror,pyrostore.io/topic-archive=orders"


def test_suspend_scales_the_mirrors_to_zero():
    assert mirror_deployment(_archive(EU, suspend=True), EU, SETTINGS)["spec"]["replicas"] == 0


def test_long_or_dotted_archive_names_are_shortened_with_a_hash():
    long_name = mirror_deployment_name("a" * 60, "far-region")
    assert len(long_name) <= 63 and long_name.endswith("-mirror-far-region")
    assert long_name != mirror_deployment_name("a" * 61, "far-region")
    dotted = mirror_deployment_name("orders.v1", "eu")
    assert "." not in dotted and dotted.startswith("orders-v1-") and dotted.endswith("-mirror-eu")
    assert mirror_deployment_name("orders", "eu") == "orders-mirror-eu"


def _deployment(name: str, mirror: str, archive: str = "orders", uid: str = "u-1", app: str = "pyrostore-mirror"):
    labels = {"app.kubernetes.io/name": app, "pyrostore.io/topic-archive": archive, "pyrostore.io/mirror": mirror}
    refs = [{"uid": uid, "controller": True}]
    return {"metadata": {"name": name, "labels": labels, "ownerReferences": refs}}


def test_only_this_archives_mirror_deployments_no_entry_wants_are_removed():
    listed = [
        _deployment("orders-mirror-eu", "eu"),
        _deployment("orders-mirror-old", "old"),
        _deployment("orders-mirror-gone", "gone", uid="someone-else"),  # same labels, another owner
        _deployment("orders-mirror-x", "x", app="pyrostore-iceberg"),
        _deployment("other-mirror-eu", "eu", archive="other"),
    ]
    assert stale_mirrors(_archive(EU), listed) == ["orders-mirror-old"]
    assert stale_mirrors(_archive(), listed) == ["orders-mirror-eu", "orders-mirror-old"]


def test_a_deployment_belongs_to_a_listed_mirror_only_under_its_own_name():
    body = _archive(EU)
    assert mirror_of(body, _deployment("orders-mirror-eu", "eu")["metadata"]) == EU
    assert mirror_of(body, _deployment("orders-mirror-old", "old")["metadata"]) is None
    assert mirror_of(body, _deployment("renamed", "eu")["metadata"]) is None


def test_a_drifted_mirror_deployment_is_noticed():
    desired = mirror_deployment(_archive(EU), EU, SETTINGS)
    edited = mirror_deployment(_archive(EU), EU | {"url": "s3://elsewhere/p"}, SETTINGS)
    assert drifted(desired, edited) and not drifted(desired, desired)


NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def _commit(seq: int, age: float = 0.0) -> Commit:
    at = (NOW - timedelta(seconds=age)).isoformat()
    return Commit("t", 0, seq, None, None, 0, seq, 1, "w", at)


def test_lag_counts_the_source_commits_past_the_newest_common_and_ages_the_oldest_missing():
    assert partition_lag(_commit(9), _commit(6), _commit(7, age=42.5), NOW) == (3, 42.5)
    assert partition_lag(_commit(2), None, _commit(0, age=5), NOW) == (3, 5.0)  # the target holds nothing yet
    assert partition_lag(_commit(6), _commit(6), None, NOW) == (0, 0.0)
    assert partition_lag(None, None, None, NOW) == (0, 0.0)


def test_status_sums_commits_takes_the_oldest_age_and_leaves_out_what_is_unknown():
    assert mirror_status(EU, [(3, 4.0), (1, 9.25), (0, 0.0)]) == {
        "name": "eu",
        "url": "s3://copy/p",
        "lagCommits": 4,
        "lagSeconds": 9.25,
    }
    assert mirror_status(EU, []) == {"name": "eu", "url": "s3://copy/p", "lagCommits": 0, "lagSeconds": 0.0}
    assert mirror_status(EU, None, "boom") == {"name": "eu", "url": "s3://copy/p", "error": "boom"}
