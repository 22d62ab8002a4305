"""Each store operation of the S3 and GCS backends through each fault kind of the fault proxy: the retries turn
errors, cut answers and stalls into the right result, and a create whose answer was lost after it landed is
still the caller's success (not ObjectExists)."""

from __future__ import annotations

import logging
import uuid

import pytest

from e2e.stack import s3 as stack_s3
from e2e.stack.faults import KINDS
from pyrostore.errors import ObjectExists, ObjectNotFound
from pyrostore.store import ObjectStore, open_store


def _store(backend: str, request: pytest.FixtureRequest) -> tuple[ObjectStore, object]:
    prefix = f"store-faults-{uuid.uuid4().hex[:8]}"
    if backend == "s3":
        server, proxy = request.getfixturevalue("s3_server"), request.getfixturevalue("s3_faults")
        store = open_store(f"s3://{server.bucket}/{prefix}", **stack_s3.store_options(server, proxy.endpoint))
    else:
        server, proxy = request.getfixturevalue("gcs_server"), request.getfixturevalue("gcs_faults")
        store = open_store(f"gs://{server.bucket}/{prefix}", endpoint_url=proxy.endpoint, project=server.project)
    return store, proxy


def _every_operation(store: ObjectStore) -> None:
    data = bytes(range(256)) * 64
    store.put("a/one", data)
    store.put("a/one", data)  # a rewrite is fine
    store.create("a/two", b"created once")
    with pytest.raises(ObjectExists):
        store.create("a/two", b"again")
    assert store.get("a/one") == data
    assert store.get_range("a/one", 1000, 3000) == data[1000:4000]
    assert store.stat("a/one").size == len(data)
    assert [info.key for info in store.list("a/")] == ["a/one", "a/two"]
    assert [info.key for info in store.list("a/", start_after="a/one")] == ["a/two"]
    store.delete("a/one")
    with pytest.raises(ObjectNotFound):
        store.get("a/one")
    assert store.get("a/two") == b"created once"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_every_operation_survives_each_fault_kind(backend, kind, request, caplog):
    store, proxy = _store(backend, request)
    caplog.set_level(logging.WARNING, logger="pyrostore.store")
    try:
        with proxy.failing(0.4, (kind,), stall_seconds=0.3, seed=5):
            _every_operation(store)
            counts = proxy.counts()
    finally:
        store.close()
    assert counts[kind] > 0, counts
    retries = [r for r in caplog.records if r.name == "pyrostore.store" and "retry" in r.getMessage()]
    # Every error and cut answer that reached the store was retried (a stall only delays). Not every fault
    # reaches it: the GCS library ignores a failed bucket lookup of its own, a cut 204 has no body to miss.
    if kind != "stall":
        assert 0 < len(retries) <= counts[kind], (counts, [r.getMessage()[:120] for r in retries])
