"""The ObjectStore contract, proven on every backend against real servers (MinIO, fake-gcs-server)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from pyrostore.errors import AccessDenied, BucketNotFound, ObjectExists, ObjectNotFound, StoreUnreachable
from pyrostore.store import ObjectInfo, ObjectStore, open_store

# Chosen so that key order differs from a naive folder walk: "." < "/" < "0" in byte order.
NESTED = [
    "t/p-0/seg-2",
    "t/p-0/seg-10",
    "t/p-0/seg-1",
    "t/p-00/x",
    "t/p-0.x",
    "t/p-1/seg-1",
    "t-x",
    "u",
]


def keys(infos) -> list[str]:
    return [info.key for info in infos]


def fill(store: ObjectStore, names: list[str]) -> None:
    for name in names:
        store.put(name, name.encode())


def test_put_then_get_and_replace(any_store):
    any_store.put("a/b", b"first")
    assert any_store.get("a/b") == b"first"
    any_store.put("a/b", b"second, longer")
    assert any_store.get("a/b") == b"second, longer"


def test_every_byte_value_and_empty_objects_survive(any_store):
    data = bytes(range(256)) * 3
    any_store.put("bin", data)
    any_store.put("empty", b"")
    assert any_store.get("bin") == data
    assert any_store.get("empty") == b""
    assert any_store.stat("empty").size == 0
    assert any_store.get_range("empty", 0, 10) == b""


def test_keys_with_unusual_characters(any_store):
    key = "dir with space/naïve+key%20&=?#.bin"
    any_store.put(key, b"x")
    assert any_store.get(key) == b"x"
    assert keys(any_store.list("dir with space/")) == [key]


def test_missing_object_raises_object_not_found(any_store):
    for call in (
        lambda: any_store.get("nope"),
        lambda: any_store.get_range("nope", 0, 1),
        lambda: any_store.get_range("nope", 0, 0),
        lambda: any_store.stat("nope"),
        lambda: any_store.get("no/such/folder/x"),
    ):
        with pytest.raises(ObjectNotFound, match=r"nope|x"):
            call()


def test_error_names_operation_store_and_key(any_store):
    with pytest.raises(ObjectNotFound) as caught:
        any_store.get("some/key")
    message = str(caught.value)
    assert "get" in message and "'some/key'" in message and any_store.url in message


def test_create_writes_a_new_object(any_store):
    any_store.create("c/1", b"mine")
    assert any_store.get("c/1") == b"mine"


def test_create_rejects_an_existing_key_and_keeps_its_bytes(any_store):
    any_store.put("c/1", b"old")
    with pytest.raises(ObjectExists, match="c/1"):
        any_store.create("c/1", b"new")
    any_store.create("c/2", b"first")
    with pytest.raises(ObjectExists):
        any_store.create("c/2", b"second")
    assert any_store.get("c/1") == b"old"
    assert any_store.get("c/2") == b"first"


def test_create_after_delete_succeeds(any_store):
    any_store.create("c", b"1")
    any_store.delete("c")
    any_store.create("c", b"2")
    assert any_store.get("c") == b"2"


def test_exactly_one_of_sixteen_racing_creates_wins(any_store):
    racers = 16
    barrier = threading.Barrier(racers)
    results: dict[int, str] = {}

    def race(i: int) -> None:
        barrier.wait()
        try:
            any_store.create("race/commit", f"writer {i}".encode())
            results[i] = "won"
        except ObjectExists:
            results[i] = "lost"
        except Exception as exc:  # reported below, with the racer's number
            results[i] = repr(exc)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    winners = [i for i, outcome in results.items() if outcome == "won"]
    assert sorted(set(results.values()) - {"won", "lost"}) == []
    assert len(results) == racers
    assert len(winners) == 1
    assert any_store.get("race/commit") == f"writer {winners[0]}".encode()


def test_stat_reports_size_and_a_utc_time(any_store):
    before = datetime.now(UTC) - timedelta(minutes=5)
    any_store.put("s/x", b"12345")
    info = any_store.stat("s/x")
    assert info == ObjectInfo("s/x", 5, info.modified)
    assert info.modified.utcoffset() == timedelta(0)
    assert before < info.modified < datetime.now(UTC) + timedelta(minutes=5)


def test_get_range(any_store):
    any_store.put("r", b"0123456789")
    assert any_store.get_range("r", 0, 3) == b"012"
    assert any_store.get_range("r", 4, 2) == b"45"
    assert any_store.get_range("r", 8, 10) == b"89"  # fewer at the end
    assert any_store.get_range("r", 10, 5) == b""
    assert any_store.get_range("r", 50, 5) == b""
    assert any_store.get_range("r", 3, 0) == b""


def test_list_is_in_key_order_with_nested_keys(any_store):
    fill(any_store, NESTED)
    listed = list(any_store.list(""))
    assert keys(listed) == sorted(NESTED)
    assert {info.key: info.size for info in listed} == {name: len(name) for name in NESTED}
    assert all(info.modified.utcoffset() == timedelta(0) for info in listed)


def test_list_by_prefix(any_store):
    fill(any_store, NESTED)
    assert keys(any_store.list("t/p-0/")) == ["t/p-0/seg-1", "t/p-0/seg-10", "t/p-0/seg-2"]
    assert keys(any_store.list("t/p-0")) == [
        "t/p-0.x",
        "t/p-0/seg-1",
        "t/p-0/seg-10",
        "t/p-0/seg-2",
        "t/p-00/x",
    ]
    assert keys(any_store.list("t/p-0/seg-1")) == ["t/p-0/seg-1", "t/p-0/seg-10"]
    assert keys(any_store.list("t")) == sorted(n for n in NESTED if n.startswith("t"))
    assert keys(any_store.list("u")) == ["u"]
    assert keys(any_store.list("v")) == []
    assert keys(any_store.list("t/none/")) == []


def test_list_after_a_key(any_store):
    fill(any_store, NESTED)
    everything = sorted(NESTED)
    for after in [*everything, "", "a", "t/p-0", "t/p-0/", "t/p-0/seg-15", "t/p-01", "zzz"]:
        assert keys(any_store.list("", start_after=after)) == [k for k in everything if k > after], after
    assert keys(any_store.list("t/p-0/", start_after="t/p-0/seg-1")) == ["t/p-0/seg-10", "t/p-0/seg-2"]
    assert keys(any_store.list("t/p-0/", start_after="a")) == ["t/p-0/seg-1", "t/p-0/seg-10", "t/p-0/seg-2"]
    assert keys(any_store.list("t/p-0/", start_after="t/p-1")) == []


def test_list_pages_through_many_objects(any_store):
    names = [f"many/{i:05d}" for i in range(1100)]  # more than one S3 or GCS listing page
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: any_store.put(name, b""), names))
    assert keys(any_store.list("many/")) == names
    assert keys(any_store.list("many/", start_after="many/00999")) == names[1000:]


def test_delete(any_store):
    fill(any_store, ["d/1", "d/2"])
    any_store.delete("d/1")
    with pytest.raises(ObjectNotFound):
        any_store.get("d/1")
    assert keys(any_store.list("d/")) == ["d/2"]
    any_store.delete("d/1")  # already gone: not an error
    any_store.delete("never/was")


def test_large_object_create_get_and_conflict(any_store):
    data = os.urandom(10 << 20)  # above GCS's 8 MiB switch to resumable uploads
    any_store.create("big/object", data)
    assert any_store.get("big/object") == data
    assert any_store.stat("big/object").size == len(data)
    assert any_store.get_range("big/object", len(data) - 100, 1000) == data[-100:]
    with pytest.raises(ObjectExists):
        any_store.create("big/object", os.urandom(9 << 20))
    assert any_store.get("big/object") == data


def test_invalid_keys_are_refused(any_store):
    for bad in ["", "/abs", "a//b", "a/", "../up", "a/./b", "a/../b"]:
        with pytest.raises(ValueError):
            any_store.get(bad)
        with pytest.raises(ValueError):
            any_store.put(bad, b"x")


# --- where objects are, for engines ---------------------------------------------------------------------------


def _read_location(location: str, request: pytest.FixtureRequest) -> bytes:
    """Read an object by its location alone, with the backend's own library (as an engine would)."""
    if location.startswith("s3://"):
        import boto3

        server = request.getfixturevalue("s3_server")
        client = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            region_name=server.region,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
        )
        bucket, _, key = location.removeprefix("s3://").partition("/")
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    if location.startswith("gs://"):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        server = request.getfixturevalue("gcs_server")
        client = storage.Client(
            project=server.project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": server.endpoint},
        )
        bucket, _, key = location.removeprefix("gs://").partition("/")
        return client.bucket(bucket).blob(key).download_as_bytes()
    assert os.path.isabs(location), location
    with open(location, "rb") as f:
        return f.read()


def test_location_names_the_object(any_store, request):
    for key in ("t/p-0/seg.parquet", "dir with space/naïve+key%20&=.bin"):
        any_store.put(key, key.encode())
        location = any_store.location(key)
        if any_store.url.startswith("file://"):
            assert location.endswith("/" + key)
        else:
            assert location == f"{any_store.url}/{key}"  # bucket, prefix and key, not percent-encoded
        assert _read_location(location, request) == key.encode()


# --- stores that cannot work --------------------------------------------------------------------------------


# Each operation on key "k", as a function of the store.
OPERATIONS = {
    "get": lambda store: store.get("k"),
    "get_range": lambda store: store.get_range("k", 0, 5),
    "stat": lambda store: store.stat("k"),
    "put": lambda store: store.put("k", b"x"),
    "create": lambda store: store.create("k", b"x"),
    "list": lambda store: list(store.list("")),
    "delete": lambda store: store.delete("k"),
}


def _missing_bucket_store(backend: str, s3_server, gcs_server, tmp_path) -> ObjectStore:
    name = f"missing-{uuid.uuid4().hex[:12]}"
    if backend == "file":
        return open_store(str(tmp_path / name), create="false")
    if backend == "s3":
        return open_store(
            f"s3://{name}/p",
            endpoint_url=s3_server.endpoint,
            access_key_id=s3_server.access_key,
            secret_access_key=s3_server.secret_key,
        )
    return open_store(f"gs://{name}/p", endpoint_url=gcs_server.endpoint)


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("backend", ["file", "s3", "gcs"])
def test_missing_bucket_raises_bucket_not_found(backend, operation, s3_server, gcs_server, tmp_path):
    store = _missing_bucket_store(backend, s3_server, gcs_server, tmp_path)
    with pytest.raises(BucketNotFound, match="missing-"):
        OPERATIONS[operation](store)
    store.close()


@pytest.mark.parametrize("operation", [op for op in OPERATIONS if op != "delete"])
@pytest.mark.parametrize("user", ["known", "unknown"])
def test_bad_s3_credentials_raise_access_denied(user, operation, s3_server):
    store = open_store(
        f"s3://{s3_server.bucket}/p",
        endpoint_url=s3_server.endpoint,
        access_key_id=s3_server.access_key if user == "known" else "no-such-user",
        secret_access_key="not-the-secret",
    )
    with pytest.raises(AccessDenied) as caught:
        OPERATIONS[operation](store)
    assert "not-the-secret" not in str(caught.value)
    assert "not-the-secret" not in store.url
    store.close()


def test_stores_under_sibling_prefixes_do_not_see_each_other(s3_server, gcs_server):
    base = f"iso-{uuid.uuid4().hex[:10]}"
    s3 = {
        "endpoint_url": s3_server.endpoint,
        "access_key_id": s3_server.access_key,
        "secret_access_key": s3_server.secret_key,
    }
    pairs = [
        (
            open_store(f"s3://{s3_server.bucket}/{base}/a", **s3),
            open_store(f"s3://{s3_server.bucket}/{base}/ab", **s3),
        ),
        (
            open_store(f"gs://{gcs_server.bucket}/{base}/a", endpoint_url=gcs_server.endpoint),
            open_store(f"gs://{gcs_server.bucket}/{base}/ab", endpoint_url=gcs_server.endpoint),
        ),
    ]
    for a, ab in pairs:
        a.put("k", b"a")
        ab.put("k", b"ab")
        assert keys(a.list("")) == ["k"]
        assert keys(ab.list("")) == ["k"]
        assert a.get("k") == b"a"
        a.close()
        ab.close()


def _closed_port() -> int:
    """A loopback port with nothing listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _store_at(backend: str, endpoint: str, s3_server, gcs_server, **options) -> ObjectStore:
    """A store of the suite's test bucket on ``backend``, reached through ``endpoint``."""
    prefix = f"retry-{uuid.uuid4().hex[:10]}"
    if backend == "s3":
        return open_store(
            f"s3://{s3_server.bucket}/{prefix}",
            endpoint_url=endpoint,
            access_key_id=s3_server.access_key,
            secret_access_key=s3_server.secret_key,
            **options,
        )
    return open_store(f"gs://{gcs_server.bucket}/{prefix}", endpoint_url=endpoint, **options)


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_a_closed_port_is_unreachable_within_the_deadline(backend, s3_server, gcs_server, caplog):
    caplog.set_level(logging.WARNING, logger="pyrostore.store")
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    store = _store_at(backend, endpoint, s3_server, gcs_server, retry_deadline="15")  # the CLI's default
    started = time.monotonic()
    with pytest.raises(StoreUnreachable) as caught:
        list(store.list(""))  # what `pyrostore ls` does first
    elapsed = time.monotonic() - started
    assert 14 < elapsed < 20
    assert str(caught.value).startswith(f"list '' in {store.url}: cannot connect to {endpoint} within the retry")
    assert len([r for r in caplog.records if r.name == "pyrostore.store"]) >= 3


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_without_a_deadline_a_store_waits_for_its_server(backend, s3_server, gcs_server, caplog):
    caplog.set_level(logging.WARNING, logger="pyrostore.store")
    upstream = s3_server.endpoint if backend == "s3" else gcs_server.endpoint
    port = _closed_port()
    store = _store_at(backend, f"http://127.0.0.1:{port}", s3_server, gcs_server)  # retries for ever
    outcome: list[object] = []
    reader = threading.Thread(target=lambda: outcome.append(_get_or_error(store, "k")))
    reader.start()
    time.sleep(2.5)
    assert reader.is_alive() and not outcome
    proxy = LossyProxy(upstream, b"never-dropped", port=port)  # the server comes up
    reader.join(60)
    proxy.close()
    assert [type(o) for o in outcome] == [ObjectNotFound]
    retries = [r.getMessage() for r in caplog.records if r.name == "pyrostore.store"]
    assert len(retries) >= 2 and all(m.startswith(f"get 'k' in {store.url} (endpoint ") for m in retries)
    store.close()


def _get_or_error(store: ObjectStore, key: str) -> object:
    try:
        return store.get(key)
    except Exception as exc:
        return exc


# --- a create retried after its response was lost -----------------------------------------------------------


class LossyProxy:
    """A TCP proxy to a real server that, once armed, swallows the response to the next request holding
    ``marker`` and drops the connection: the request took effect, but the client never hears so and retries.
    """

    def __init__(self, endpoint: str, marker: bytes, port: int = 0) -> None:
        parts = urlsplit(endpoint)
        self.upstream = (parts.hostname, parts.port)
        self.marker = marker.lower()
        self.armed = threading.Event()
        self.dropped = 0
        self.listener = socket.create_server(("127.0.0.1", port))
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream)
        drop = threading.Event()

        def forward_requests() -> None:
            try:
                while data := client.recv(1 << 16):
                    # HTTP/1.1 clients send no new request before the last response: what answers
                    # this request is the next thing upstream sends.
                    if self.armed.is_set() and self.marker in data.lower():
                        self.armed.clear()
                        drop.set()
                    upstream.sendall(data)
            except OSError:
                pass

        threading.Thread(target=forward_requests, daemon=True).start()
        try:
            while data := upstream.recv(1 << 16):
                if drop.is_set() and data.startswith(b"HTTP/1.1 100 "):
                    # An interim "100 Continue" (S3 clients send Expect) precedes the body; pass it on.
                    end = data.index(b"\r\n\r\n") + 4
                    client.sendall(data[:end])
                    data = data[end:]
                    if not data:
                        continue
                if drop.is_set():
                    self.dropped += 1
                    break
                client.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):  # shutdown wakes the other thread's recv; close alone would not
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


def _lossy_store(backend: str, s3_server, gcs_server) -> tuple[ObjectStore, LossyProxy]:
    prefix = f"lossy-{uuid.uuid4().hex[:10]}"
    if backend == "s3":
        proxy = LossyProxy(s3_server.endpoint, b"if-none-match")
        store = open_store(
            f"s3://{s3_server.bucket}/{prefix}",
            endpoint_url=proxy.endpoint,
            access_key_id=s3_server.access_key,
            secret_access_key=s3_server.secret_key,
        )
    else:
        proxy = LossyProxy(gcs_server.endpoint, b"ifGenerationMatch=0")
        store = open_store(f"gs://{gcs_server.bucket}/{prefix}", endpoint_url=proxy.endpoint)
    return store, proxy


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_create_whose_response_was_lost_still_succeeds(backend, s3_server, gcs_server):
    store, proxy = _lossy_store(backend, s3_server, gcs_server)
    proxy.armed.set()
    store.create("commit", b"ours")  # the retry fails its precondition on our own object
    assert proxy.dropped == 1
    assert store.get("commit") == b"ours"
    store.close()
    proxy.close()


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_retried_create_still_loses_to_another_writer(backend, s3_server, gcs_server):
    store, proxy = _lossy_store(backend, s3_server, gcs_server)
    store.create("commit", b"theirs")
    proxy.armed.set()
    with pytest.raises(ObjectExists):
        store.create("commit", b"ours")
    assert proxy.dropped == 1
    assert store.get("commit") == b"theirs"
    store.close()
    proxy.close()
