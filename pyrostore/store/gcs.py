"""An object store in a Google Cloud Storage bucket (or fake-gcs-server), through google-cloud-storage."""

from __future__ import annotations

import functools
import http.client
import json
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC
from typing import TypeVar

import requests
import urllib3
from google.api_core import exceptions as api
from google.auth import exceptions as auth
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import storage
from google.cloud.storage import exceptions as media
from google.oauth2 import credentials as user_account
from google.oauth2 import service_account

from pyrostore.errors import (
    AccessDenied,
    BucketNotFound,
    ObjectExists,
    ObjectNotFound,
    StoreError,
)
from pyrostore.store._common import CREATE_TOKEN, check_key, created_by_us, join_key, new_create_token
from pyrostore.store._retry import TRANSIENT_STATUSES, Retrier, attempt_timeouts, check_deadline, unreachable
from pyrostore.store._url import redact, scrub
from pyrostore.store.base import ObjectInfo

OPTIONS: dict[str, type] = {
    "endpoint_url": str,
    "project": str,
    "credentials_file": str,
    "retry_deadline": float,
}
# No environment variable or Secret key becomes an option: credentials come from a key file (mounted from a
# Secret and named by credentials_file) or from Google's application default credentials.
CREDENTIALS: dict[str, str] = {}
# Options a read-only opening sets: none, opening a GCS store creates nothing.
READ_ONLY: dict[str, object] = {}

T = TypeVar("T")

_CONTENT_TYPE = "application/octet-stream"
# A create whose precondition fails finds no object when the holder was deleted in between; it tries again.
_VANISHED_ATTEMPTS = 5


class GCSStore:
    """Objects under ``prefix`` in a GCS bucket. Connection failures, throttling and 5xx answers are retried
    with backoff until ``retry_deadline`` (see :class:`~pyrostore.store._retry.Retrier`)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        project: str | None = None,
        credentials_file: str | None = None,
        retry_deadline: float | None = None,
    ) -> None:
        """Open the store. Credentials come from ``credentials_file``, else anonymous for an emulator at
        ``endpoint_url``, else Google's application default credentials. Sends nothing to the server.

        ``retry_deadline``: seconds an operation may spend retrying transient failures before it raises
        (StoreUnreachable when the endpoint cannot be reached); None or infinite: retry for ever. Raises
        InvalidStoreURL for a bad option, AccessDenied or StoreError for unusable credentials.
        """
        self._bucket_name = bucket
        self._root = prefix.strip("/")
        self._url = f"gs://{bucket}/{self._root}" if self._root else f"gs://{bucket}"
        self._endpoint = redact(endpoint_url) if endpoint_url else "Google Cloud Storage"
        self._deadline = check_deadline(self._url, retry_deadline)
        self._retrier = Retrier(self._url, self._endpoint, self._deadline, _transient, _reason)
        self._timeout = attempt_timeouts(self._deadline)
        credentials = None
        if credentials_file:
            credentials, file_project = self._load_credentials(credentials_file)
            project = project or file_project
        try:
            if credentials is None and endpoint_url:
                credentials = AnonymousCredentials()
                project = project or "pyrostore"  # an emulator ignores it, but the client wants one
            options = {"api_endpoint": endpoint_url} if endpoint_url else None
            self._client = storage.Client(project=project, credentials=credentials, client_options=options)
        except auth.DefaultCredentialsError as exc:
            raise AccessDenied(f"open {self._url}: no usable Google credentials: {_brief(exc)}") from exc
        except (auth.GoogleAuthError, OSError, ValueError) as exc:
            raise StoreError(f"open {self._url}: {_brief(exc)}") from exc
        self._bucket = self._client.bucket(bucket)

    @property
    def url(self) -> str:
        """``gs://bucket/prefix``."""
        return self._url

    def location(self, key: str) -> str:
        """``gs://bucket/prefix/key``, as DuckDB, Arrow and Spark name the object (not percent-encoded)."""
        return f"gs://{self._bucket_name}/{join_key(self._root, check_key(key))}"

    def get(self, key: str) -> bytes:
        """Return the whole object."""
        try:
            return self._call("get", key, lambda: self._blob(key).download_as_bytes(**self._once()))
        except api.NotFound as exc:
            raise self._missing("get", key) from exc
        except _FAILURES as exc:
            raise self._error("get", key, exc) from exc

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Return ``length`` bytes from ``start`` (fewer at the object's end)."""
        if start < 0 or length < 0:
            raise ValueError(f"get_range {key!r}: start and length must be >= 0, not {start}, {length}")
        if length == 0:
            self.stat(key)  # still report a missing object
            return b""
        end = start + length - 1
        try:
            return self._call(
                "get_range", key, lambda: self._blob(key).download_as_bytes(start=start, end=end, **self._once())
            )
        except api.RequestRangeNotSatisfiable:
            return b""  # the range starts at or past the object's end
        except api.NotFound as exc:
            raise self._missing("get_range", key) from exc
        except _FAILURES as exc:
            raise self._error("get_range", key, exc) from exc

    def put(self, key: str, data: bytes) -> None:
        """Write the object, replacing any existing one (a retry rewrites the same bytes, which is safe)."""
        try:
            self._call(
                "put",
                key,
                lambda: self._blob(key).upload_from_string(data, content_type=_CONTENT_TYPE, **self._once()),
            )
        except _FAILURES as exc:
            raise self._error("put", key, exc) from exc

    def create(self, key: str, data: bytes) -> None:
        """Write the object only if the key is free (``ifGenerationMatch=0``).

        The object carries a token naming this call, so that a retry whose first attempt did land (and so
        fails its precondition) is recognised as a success rather than a lost race. Above 8 MiB the library
        uploads in resumable sessions, where GCS (and fake-gcs-server 1.56) check the precondition when the
        session completes; the contract tests prove a 10 MiB create against an existing key fails.
        """
        token = new_create_token()
        for _ in range(_VANISHED_ATTEMPTS):
            try:
                self._call("create", key, lambda: self._upload_new(key, data, token))
                return
            except api.PreconditionFailed:
                holder = self._find("create", key)
                if holder is not None:
                    if created_by_us(token, holder.metadata):
                        return
                    raise ObjectExists(f"create {key!r} in {self._url}: the object already exists") from None
                time.sleep(0.05)
            except _FAILURES as exc:
                raise self._error("create", key, exc) from exc
        raise StoreError(f"create {key!r} in {self._url}: the key kept being taken and freed concurrently")

    def stat(self, key: str) -> ObjectInfo:
        """Return the object's size and modification time."""
        blob = self._find("stat", key)
        if blob is None:
            raise self._missing("stat", key)
        return ObjectInfo(key, blob.size, blob.updated.astimezone(UTC))

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Yield objects whose key starts with ``prefix``, in ascending key order, after ``start_after``.

        Pages are fetched one by one (each retried on its own), so a retry never repeats a yielded object.
        """
        after = join_key(self._root, start_after) if start_after is not None else None
        skip = len(self._root) + 1 if self._root else 0
        token = None
        while True:
            try:
                blobs, token = self._call("list", prefix, functools.partial(self._list_page, prefix, after, token))
            except api.NotFound as exc:
                raise self._no_bucket("list", prefix) from exc
            except _FAILURES as exc:
                raise self._error("list", prefix, exc) from exc
            for blob in blobs:
                if blob.name != after:  # start_offset is inclusive
                    yield ObjectInfo(blob.name[skip:], blob.size, blob.updated.astimezone(UTC))
            if not token:
                return

    def delete(self, key: str) -> None:
        """Delete the object; a missing object is not an error."""
        try:
            # A retry finding the object already gone (the first attempt landed) is fine here.
            self._call("delete", key, lambda: self._blob(key).delete(**self._once()))
        except api.NotFound as exc:
            if isinstance(self._missing("delete", key), BucketNotFound):
                raise self._no_bucket("delete", key) from exc
        except _FAILURES as exc:
            raise self._error("delete", key, exc) from exc

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    # --- internals ---------------------------------------------------------------------------------------

    def _call(self, op: str, key: str, call: Callable[[], T]) -> T:
        """One library call, retried on transient failures until the deadline; raises the library's last error."""
        return self._retrier.run(op, key, call)

    def _once(self) -> dict[str, object]:
        """Arguments making a library call a single attempt: the retrier retries, not the library."""
        return {"retry": None, "timeout": self._timeout}

    def _upload_new(self, key: str, data: bytes, token: str) -> None:
        """One create-only upload attempt, carrying the create call's token."""
        blob = self._blob(key)
        blob.metadata = {CREATE_TOKEN: token}
        blob.upload_from_string(data, content_type=_CONTENT_TYPE, if_generation_match=0, **self._once())

    def _list_page(
        self, prefix: str, after: str | None, token: str | None
    ) -> tuple[Sequence[storage.Blob], str | None]:
        """One page of a listing, and the token of the next page (None after the last)."""
        blobs = self._client.list_blobs(
            self._bucket, prefix=join_key(self._root, prefix), start_offset=after, page_token=token, **self._once()
        )
        page = next(blobs.pages)  # the request is made here
        return list(page), blobs.next_page_token

    def _load_credentials(self, path: str) -> tuple[Credentials, str | None]:
        """Service account or user credentials from a JSON file, and the project it names.

        Other kinds (workload identity federation, impersonation) work through
        ``GOOGLE_APPLICATION_CREDENTIALS`` instead, which Google's default lookup reads.
        """
        what = f"open {self._url}: credentials_file {path!r}"
        try:
            with open(path, encoding="utf-8") as f:
                info = json.load(f)
            kind = info.get("type") if isinstance(info, dict) else None
            if kind == "service_account":
                return service_account.Credentials.from_service_account_info(info), info.get("project_id")
            if kind == "authorized_user":
                return user_account.Credentials.from_authorized_user_info(info), info.get("quota_project_id")
        except (OSError, ValueError, auth.GoogleAuthError) as exc:
            # ValueError covers bad JSON; its text quotes no file content.
            raise StoreError(f"{what}: cannot be used: {_brief(exc)}") from exc
        raise StoreError(
            f"{what}: type {kind!r} is not supported here (use service_account or authorized_user, "
            "or name the file in GOOGLE_APPLICATION_CREDENTIALS)"
        )

    def _blob(self, key: str) -> storage.Blob:
        """A fresh handle on ``key``'s object (handles hold state, so none is shared between calls)."""
        return self._bucket.blob(join_key(self._root, check_key(key)))

    def _find(self, op: str, key: str) -> storage.Blob | None:
        """The object with its metadata, or None if there is none (or no bucket)."""
        name = join_key(self._root, check_key(key))
        try:
            return self._call(op, key, lambda: self._bucket.get_blob(name, **self._once()))
        except _FAILURES as exc:
            raise self._error(op, key, exc) from exc

    def _missing(self, op: str, key: str) -> StoreError:
        """For a 404 on an object: BucketNotFound if the bucket is missing, else ObjectNotFound."""
        try:
            if not self._call(op, key, lambda: self._bucket.exists(**self._once())):
                return self._no_bucket(op, key)
        except _FAILURES:
            pass  # may lack permission to look at the bucket; the object is missing either way
        return ObjectNotFound(f"{op} {key!r} from {self._url}: no such object")

    def _no_bucket(self, op: str, key: str) -> BucketNotFound:
        """The error for a bucket that does not exist."""
        return BucketNotFound(f"{op} {key!r} in {self._url}: bucket {self._bucket_name!r} does not exist")

    def _error(self, op: str, key: str, exc: Exception) -> StoreError:
        """Wrap a google-cloud-storage error as the matching StoreError."""
        where = f"{op} {key!r} in {self._url}"
        if isinstance(exc, (api.Forbidden, api.Unauthorized, auth.RefreshError)):
            return AccessDenied(f"{where}: access denied ({_brief(exc)})")
        if isinstance(exc, api.NotFound):
            return self._missing(op, key)  # for a write, only the bucket can be missing
        if _unreachable(exc):
            return unreachable(where, self._endpoint, self._deadline, _reason(exc))
        return StoreError(f"{where} (endpoint {self._endpoint}): {_brief(exc)}")


_FAILURES = (
    api.GoogleAPICallError,
    auth.GoogleAuthError,
    media.InvalidResponse,
    media.DataCorruption,
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    OSError,
)

# Failures of the connection itself, as requests, urllib3 and http.client report them.
_CONNECTION_FAILURES = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.TimeoutError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)


def _unreachable(exc: BaseException) -> bool:
    """Whether a failure means the endpoint could not be reached or did not answer (a certificate error is
    not: waiting will not fix it)."""
    if isinstance(exc, auth.TransportError) and exc.args and isinstance(exc.args[0], BaseException):
        return _unreachable(exc.args[0])  # fetching a token failed; the cause says why
    if isinstance(exc, (requests.exceptions.SSLError, urllib3.exceptions.SSLError)):
        return False
    return isinstance(exc, _CONNECTION_FAILURES)


def _transient(exc: Exception) -> bool:
    """Whether a failure may go away on its own: an unreachable endpoint, throttling, a server error."""
    if isinstance(exc, api.GoogleAPICallError):
        return exc.code in TRANSIENT_STATUSES
    if isinstance(exc, media.InvalidResponse):
        return exc.response.status_code in TRANSIENT_STATUSES
    return _unreachable(exc)


def _reason(exc: BaseException) -> str:
    """Why a call failed, in one line: for a connection failure its innermost cause (``[Errno 111]
    Connection refused``), as requests and urllib3 nest every layer's message into theirs."""
    if not _unreachable(exc):
        return _brief(exc)
    for _ in range(10):  # the chains are a few links long; never loop on a cyclic one
        inner = getattr(exc, "reason", None) or exc.__cause__
        if inner is None and exc.args and isinstance(exc.args[0], BaseException):
            inner = exc.args[0]
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return _brief(exc)


def _brief(exc: BaseException) -> str:
    """An exception's first line (google's messages repeat the whole response), without URL passwords."""
    text = scrub(str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__
