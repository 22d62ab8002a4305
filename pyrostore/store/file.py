"""An object store in a local folder: one file per key, written atomically and durably."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote

from pyrostore.errors import AccessDenied, BucketNotFound, ObjectExists, ObjectNotFound, StoreError
from pyrostore.store._common import check_key
from pyrostore.store._retry import check_deadline
from pyrostore.store.base import ObjectInfo

# Writes go to a temporary file beside the target first; listings skip names with this prefix.
TEMP_PREFIX = ".tmp-"

OPTIONS: dict[str, type] = {"create": bool, "retry_deadline": float}
# No environment variable or Secret key becomes an option: file permissions are the only credentials.
CREDENTIALS: dict[str, str] = {}
# Options a read-only opening sets: the folder is not made.
READ_ONLY: dict[str, object] = {"create": False}

_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


class FileStore:
    """A folder whose files, at any depth, are the objects; keys are their ``/``-separated relative paths.

    A key and a key below it (``a`` and ``a/b``) cannot both exist, as a file cannot also be a folder; keys
    whose parts start with ``.tmp-`` are reserved for in-flight writes.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, create: bool = True, retry_deadline: float | None = None
    ) -> None:
        """Open the store in folder ``root``, creating it (and its parents) when ``create`` is true.

        ``retry_deadline`` is accepted as on every backend, and checked, but has no effect: a local file
        system has no transient failures worth retrying. Raises InvalidStoreURL for a bad option, and
        AccessDenied or StoreError when the folder cannot be made.
        """
        self._root = os.path.abspath(root)
        self._url = "file://" + quote(self._root)  # quoted, so that open_store(url) finds the folder again
        check_deadline(self._url, retry_deadline)
        if create:
            try:
                os.makedirs(self._root, exist_ok=True)
            except PermissionError as exc:
                raise AccessDenied(f"create the store folder {self._url}: permission denied") from exc
            except OSError as exc:
                raise StoreError(f"create the store folder {self._url}: {_reason(exc)}") from exc

    @property
    def url(self) -> str:
        """``file://`` and the folder's absolute path, percent-encoded where needed."""
        return self._url

    def location(self, key: str) -> str:
        """The object's absolute file path (the store's folder need not exist)."""
        return self._path(key)

    def get(self, key: str) -> bytes:
        """Return the whole object."""
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                return f.read()
        except _MISSING as exc:
            raise self._missing("get", key) from exc
        except OSError as exc:
            raise self._error("get", key, exc) from exc

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Return ``length`` bytes from ``start`` (fewer at the object's end)."""
        if start < 0 or length < 0:
            raise ValueError(f"get_range {key!r}: start and length must be >= 0, not {start}, {length}")
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                f.seek(start)
                return f.read(length)
        except _MISSING as exc:
            raise self._missing("get_range", key) from exc
        except OSError as exc:
            raise self._error("get_range", key, exc) from exc

    def put(self, key: str, data: bytes) -> None:
        """Write the object, replacing any existing one, through a temporary file and a rename."""
        path = self._path(key)
        try:
            temp = self._write_temp("put", key, path, data)
            try:
                os.replace(temp, path)
            except BaseException:
                _unlink_quietly(temp)
                raise
            _fsync_dir(os.path.dirname(path))
        except OSError as exc:
            raise self._error("put", key, exc) from exc

    def create(self, key: str, data: bytes) -> None:
        """Write the object only if the key is free: a hard link of a complete temporary file claims it."""
        path = self._path(key)
        try:
            temp = self._write_temp("create", key, path, data)
            try:
                os.link(temp, path)  # atomic, and fails if the name is taken, across threads and processes
            except FileExistsError:
                if os.path.isdir(path):
                    raise StoreError(f"create {key!r} in {self._url}: a folder has that name") from None
                raise ObjectExists(f"create {key!r} in {self._url}: the object already exists") from None
            except OSError as exc:
                # The temporary file was just made in that folder, so this is no lack of permission.
                if exc.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
                    raise StoreError(
                        f"create {key!r} in {self._url}: the file system refuses hard links, which "
                        f"create-only writes need ({_reason(exc)})"
                    ) from exc
                raise
            finally:
                _unlink_quietly(temp)
            _fsync_dir(os.path.dirname(path))
        except OSError as exc:
            raise self._error("create", key, exc) from exc

    def stat(self, key: str) -> ObjectInfo:
        """Return the object's size and modification time."""
        path = self._path(key)
        try:
            st = os.stat(path)
        except _MISSING as exc:
            raise self._missing("stat", key) from exc
        except OSError as exc:
            raise self._error("stat", key, exc) from exc
        if not stat.S_ISREG(st.st_mode):
            raise self._missing("stat", key)
        return _info(key, st)

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Yield objects whose key starts with ``prefix``, in ascending key order, after ``start_after``.

        Walks only the folders that can hold such keys, each sorted so that the walk order is key order.
        """
        folders = prefix.split("/")[:-1]
        if any(part in ("", ".", "..") for part in folders):
            if not os.path.isdir(self._root):
                raise self._no_bucket("list", prefix)
            return  # no valid key has such a prefix
        yield from self._walk("/".join(folders), prefix, start_after)

    def delete(self, key: str) -> None:
        """Delete the object; a missing object is not an error."""
        path = self._path(key)
        try:
            os.unlink(path)
        except _MISSING:
            if not os.path.isdir(self._root):
                raise self._no_bucket("delete", key) from None
        except OSError as exc:
            raise self._error("delete", key, exc) from exc

    def close(self) -> None:
        """Nothing to release."""

    # --- internals ---------------------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        """The file path of ``key``, which must be a valid key."""
        parts = check_key(key).split("/")
        if any(part.startswith(TEMP_PREFIX) for part in parts):
            raise ValueError(f"invalid object key {key!r}: parts starting with {TEMP_PREFIX!r} are reserved")
        return os.path.join(self._root, *parts)

    def _write_temp(self, op: str, key: str, path: str, data: bytes) -> str:
        """Write ``data`` durably to a new temporary file in ``path``'s folder; return the file's path."""
        if not os.path.isdir(self._root):
            raise self._no_bucket(op, key)
        folder = os.path.dirname(path)
        _make_folders(folder)
        temp = os.path.join(folder, f"{TEMP_PREFIX}{uuid.uuid4().hex}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            _unlink_quietly(temp)
            raise
        return temp

    def _walk(self, folder_key: str, prefix: str, after: str | None) -> Iterator[ObjectInfo]:
        """Yield the matching objects below the folder of key prefix ``folder_key``, in key order."""
        folder = os.path.join(self._root, *folder_key.split("/")) if folder_key else self._root
        try:
            with os.scandir(folder) as it:
                # A folder sorts as its name plus "/", the prefix every key below it shares.
                named = [
                    (entry.name + "/" if entry.is_dir(follow_symlinks=False) else entry.name, entry)
                    for entry in it
                    if not entry.name.startswith(TEMP_PREFIX)
                ]
        except _MISSING as exc:
            if not os.path.isdir(self._root):
                raise self._no_bucket("list", prefix) from exc
            return  # the prefix's folder does not exist (or went away): nothing to list
        except OSError as exc:
            raise self._error("list", prefix, exc) from exc
        entries = sorted(named, key=lambda pair: pair[0])
        base = folder_key + "/" if folder_key else ""
        for name, entry in entries:
            key = base + name
            if name.endswith("/"):
                if not key.startswith(prefix):
                    continue  # (the walk starts in the prefix's deepest folder: no folder holds it deeper)
                if after is not None and key <= after and not after.startswith(key):
                    continue  # every key below sorts before ``after``
                yield from self._walk(key[:-1], prefix, after)
            elif key.startswith(prefix) and (after is None or key > after):
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue  # deleted since the folder was read
                except OSError as exc:
                    raise self._error("list", prefix, exc) from exc
                if stat.S_ISREG(st.st_mode):
                    yield _info(key, st)

    def _no_bucket(self, op: str, key: str) -> BucketNotFound:
        """The error for a store whose folder does not exist."""
        return BucketNotFound(f"{op} {key!r} in {self._url}: the store's folder does not exist")

    def _missing(self, op: str, key: str) -> StoreError:
        """BucketNotFound if the store's folder is gone, else ObjectNotFound."""
        if not os.path.isdir(self._root):
            return self._no_bucket(op, key)
        return ObjectNotFound(f"{op} {key!r} from {self._url}: no such object")

    def _error(self, op: str, key: str, exc: OSError) -> StoreError:
        """Wrap an operating system error."""
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, PermissionError):
            return AccessDenied(f"{op} {key!r} in {self._url}: permission denied ({exc.filename})")
        return StoreError(f"{op} {key!r} in {self._url}: {_reason(exc)}")


def _info(key: str, st: os.stat_result) -> ObjectInfo:
    """An ObjectInfo from a file's status."""
    return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))


def _reason(exc: OSError) -> str:
    """An OSError's message with the file it concerns."""
    what = exc.strerror or str(exc)
    return f"{what} ({exc.filename})" if exc.filename else what


def _make_folders(folder: str) -> None:
    """Create ``folder`` and missing parents, syncing each new folder's entry to disk."""
    if os.path.isdir(folder):
        return
    parent = os.path.dirname(folder)
    if parent != folder:
        _make_folders(parent)
    try:
        os.mkdir(folder)
    except FileExistsError:
        if not os.path.isdir(folder):
            raise
        return  # created concurrently
    _fsync_dir(parent)


def _fsync_dir(folder: str) -> None:
    """Make a folder's entries durable; some file systems cannot, which is not an error."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    """Remove a temporary file, ignoring failure (it is invisible to listings anyway)."""
    with contextlib.suppress(OSError):
        os.unlink(path)
