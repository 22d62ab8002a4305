"""The local folder store: atomic create across threads and processes, key-ordered listing, error mapping."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import threading
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrostore.errors import AccessDenied, BucketNotFound, ObjectExists, ObjectNotFound, StoreError
from pyrostore.store import ObjectStore, open_existing_store, open_store
from pyrostore.store.file import FileStore


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "store")


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_is_an_object_store_with_a_file_url(tmp_path):
    store = open_store(str(tmp_path / "s"))
    assert isinstance(store, ObjectStore)
    assert store.url == f"file://{tmp_path}/s"


def test_open_creates_the_folder_and_missing_parents(tmp_path):
    store = open_store(str(tmp_path / "a" / "b" / "c"))
    assert (tmp_path / "a" / "b" / "c").is_dir()
    store.put("k", b"v")
    assert (tmp_path / "a" / "b" / "c" / "k").read_bytes() == b"v"


def test_without_create_a_missing_folder_is_bucket_not_found(tmp_path):
    store = open_store(f"file://{tmp_path}/nope", create="false")
    assert not (tmp_path / "nope").exists()
    for call in (
        lambda: store.get("k"),
        lambda: store.stat("k"),
        lambda: store.put("k", b"x"),
        lambda: store.create("a/k", b"x"),
        lambda: list(store.list("")),
        lambda: list(store.list("a//")),
        lambda: store.delete("k"),
    ):
        with pytest.raises(BucketNotFound, match="nope"):
            call()
    assert not (tmp_path / "nope").exists()


def test_read_only_opening_never_makes_the_folder(tmp_path):
    store = open_existing_store(f"file://{tmp_path}/nope")
    with pytest.raises(BucketNotFound, match="nope"):
        store.get("k")
    with pytest.raises(BucketNotFound, match="nope"):
        list(store.list(""))
    assert not (tmp_path / "nope").exists()


def test_read_only_opening_of_an_existing_folder_reads_it(tmp_path):
    open_store(str(tmp_path / "s")).put("k", b"v")
    assert open_existing_store(str(tmp_path / "s")).get("k") == b"v"


def test_location_is_the_objects_absolute_path_unquoted(tmp_path):
    folder = tmp_path / "odd name #1 %20"
    store = open_store(str(folder))
    store.put("a/b c%41", b"v")
    path = store.location("a/b c%41")
    assert path == str(folder / "a" / "b c%41")
    assert Path(path).read_bytes() == b"v"
    assert open_existing_store(store.url).location("a/b c%41") == path
    with pytest.raises(ValueError, match="reserved"):
        store.location("a/.tmp-x")


def test_a_file_where_the_folder_should_be_is_a_store_error(tmp_path):
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(StoreError, match="f"):
        open_store(str(tmp_path / "f"))


def test_objects_are_files_at_their_key_paths(store, tmp_path):
    store.put("t/p-0/seg", b"1")
    store.create("t/p-0/commit", b"2")
    assert all_files(tmp_path / "store") == ["t/p-0/commit", "t/p-0/seg"]


def test_no_temporary_file_is_left_or_listed(store, tmp_path):
    store.put("a/x", b"1")
    store.create("a/y", b"2")
    with pytest.raises(ObjectExists):
        store.create("a/y", b"3")
    assert all_files(tmp_path / "store") == ["a/x", "a/y"]
    # A crashed writer's leftovers are invisible.
    (tmp_path / "store" / ".tmp-crashed").write_bytes(b"partial")
    (tmp_path / "store" / "a" / ".tmp-crashed").write_bytes(b"partial")
    assert [info.key for info in store.list("")] == ["a/x", "a/y"]
    with pytest.raises(ValueError, match="reserved"):
        store.put("a/.tmp-x", b"")


def test_a_key_cannot_also_be_a_folder(store):
    store.put("a/b", b"1")
    with pytest.raises(StoreError, match="'a'"):
        store.put("a", b"2")
    with pytest.raises(StoreError, match="folder"):
        store.create("a", b"2")
    with pytest.raises(ObjectNotFound):
        store.get("a")
    with pytest.raises(ObjectNotFound):
        store.stat("a")
    store.delete("a")  # no object of that name: nothing to do
    with pytest.raises(StoreError, match="'a/b/c'"):
        store.put("a/b/c", b"3")
    with pytest.raises(ObjectNotFound):
        store.get("a/b/c")
    assert store.get("a/b") == b"1"


def test_get_range_rejects_negative_arguments(store):
    store.put("k", b"abc")
    with pytest.raises(ValueError):
        store.get_range("k", -1, 2)
    with pytest.raises(ValueError):
        store.get_range("k", 0, -2)


def test_modified_time_is_utc(store):
    store.put("k", b"")
    assert store.stat("k").modified.utcoffset() == timedelta(0)


def test_readers_never_see_a_partial_put(store):
    size = 1 << 20
    store.put("k", b"a" * size)
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            for fill in (b"a", b"b"):
                store.put("k", fill * size)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(100):
            data = store.get("k")
            assert data in (b"a" * size, b"b" * size)
    finally:
        stop.set()
        writer.join()


@contextmanager
def unwritable(folder: Path):
    """Make ``folder`` refuse new entries, even to root (whom file modes do not stop)."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o700)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.fail("running as root, the test needs chattr +i (e2fsprogs) to deny a write, and it failed")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_permission_errors_are_access_denied(store, tmp_path):
    store.put("locked/old", b"1")
    with unwritable(tmp_path / "store" / "locked"):
        for call in (
            lambda: store.put("locked/new", b"x"),
            lambda: store.create("locked/new", b"x"),
            lambda: store.delete("locked/old"),
        ):
            with pytest.raises(AccessDenied, match="locked"):
                call()
    assert store.get("locked/old") == b"1"


# --- racing creators ----------------------------------------------------------------------------------------


def test_sixteen_threads_race_to_create_and_one_wins(store):
    barrier = threading.Barrier(16)
    outcomes: dict[int, str] = {}

    def race(i: int) -> None:
        barrier.wait()
        try:
            store.create("race/commit", f"thread {i}".encode())
            outcomes[i] = "won"
        except ObjectExists:
            outcomes[i] = "lost"

    threads = [threading.Thread(target=race, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [i for i, outcome in outcomes.items() if outcome == "won"]
    assert len(outcomes) == 16 and len(winners) == 1
    assert store.get("race/commit") == f"thread {winners[0]}".encode()


def _create_in_process(root: str, number: int, barrier, results) -> None:
    """One racing process (top level, so that a spawned process can import it)."""
    store = FileStore(root)
    barrier.wait()
    try:
        store.create("race/commit", f"process {number}".encode() * 10_000)
        results.put((number, "won"))
    except ObjectExists:
        results.put((number, "lost"))
    except Exception as exc:
        results.put((number, repr(exc)))


def test_four_processes_race_to_create_and_one_wins(tmp_path):
    root = str(tmp_path / "store")
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(4), context.Queue()
    processes = [context.Process(target=_create_in_process, args=(root, i, barrier, results)) for i in range(4)]
    for process in processes:
        process.start()
    outcomes = dict(results.get(timeout=60) for _ in processes)
    for process in processes:
        process.join(60)
    winners = [i for i, outcome in outcomes.items() if outcome == "won"]
    assert sorted(outcomes.values()) == ["lost", "lost", "lost", "won"]
    assert FileStore(root).get("race/commit") == f"process {winners[0]}".encode() * 10_000
    assert all_files(Path(root)) == ["race/commit"]


# --- listing, against a model -------------------------------------------------------------------------------

# Few, ordering-sensitive characters: "." < "/" < "0" < "a" makes folder-walk order differ from key order.
_SEGMENTS = st.text(alphabet="a0.-", min_size=1, max_size=3).filter(lambda s: s not in (".", ".."))
_KEYS = st.lists(_SEGMENTS, min_size=1, max_size=3).map("/".join)
_PROBES = st.text(alphabet="a0.-/", max_size=7)


def _without_folder_clashes(keys: set[str]) -> list[str]:
    """Drop keys that are the folder of another key (a file store cannot hold both)."""
    return sorted(k for k in keys if not any(other.startswith(k + "/") for other in keys))


@st.composite
def _listings(draw) -> tuple[list[str], str, str | None]:
    """Keys to store, then a prefix and a start_after, often cut from those keys (where edge cases are)."""
    keys = _without_folder_clashes(draw(st.sets(_KEYS, max_size=12)))
    cuts = [key[:i] for key in keys for i in range(len(key) + 1)]
    probe = st.sampled_from(cuts) | _PROBES if cuts else _PROBES
    return keys, draw(probe), draw(st.none() | probe)


@settings(max_examples=150, deadline=None)
@given(listing=_listings())
def test_list_matches_a_sorted_filter(tmp_path_factory, listing):
    keys, prefix, start_after = listing
    store = FileStore(tmp_path_factory.mktemp("model"))
    for key in keys:
        store.put(key, key.encode())
    expected = [k for k in keys if k.startswith(prefix) and (start_after is None or k > start_after)]
    listed = list(store.list(prefix, start_after))
    assert [info.key for info in listed] == expected
    assert [info.size for info in listed] == [len(k.encode()) for k in expected]
