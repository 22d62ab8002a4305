"""An object store in a Google Cloud Storage bucket (or fake-gcs-server), through google-cloud-storage."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC

import requests
from google.api_core import exceptions as api
from google.auth import exceptions as auth
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import storage
from google.cloud.storage import exceptions as media
from google.cloud.storage.retry import DEFAULT_RETRY
from google.oauth2 import credentials as user_account
from google.oauth2 import service_account

from pyrostore.errors import (
    AccessDenied,
    BucketNotFound,
    InvalidStoreURL,
    ObjectExists,
    ObjectNotFound,
    StoreError,
)
from pyrostore.store._common import CREATE_TOKEN, check_key, created_by_us, join_key, new_create_token
from pyrostore.store._url import redact, scrub
from pyrostore.store.base import ObjectInfo

OPTIONS: dict[str, type] = {
    "endpoint_url": str,
    "project": str,
    "credentials_file": str,
    "retry_timeout": float,
}

_CONTENT_TYPE = "application/octet-stream"
# A create whose precondition fails finds no object when the holder was deleted in between; it tries again.
_VANISHED_ATTEMPTS = 5


class GCSStore:
    """Objects under ``prefix`` in a GCS bucket. Transient failures are retried with the library's backoff."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        project: str | None = None,
        credentials_file: str | None = None,
        retry_timeout: float = 120.0,
    ) -> None:
        """Open the store. Credentials come from ``credentials_file``, else anonymous for an emulator at
        ``endpoint_url``, else Google's application default credentials. Sends nothing to the server.
        """
        self._bucket_name = bucket
        self._root = prefix.strip("/")
        self._url = f"gs://{bucket}/{self._root}" if self._root else f"gs://{bucket}"
        self._endpoint = redact(endpoint_url) if endpoint_url else "Google Cloud Storage"
        if retry_timeout <= 0:
            raise InvalidStoreURL(f"open {self._url}: retry_timeout must be positive, not {retry_timeout}")
        self._retry = DEFAULT_RETRY.with_timeout(retry_timeout)
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

    def get(self, key: str) -> bytes:
        """Return the whole object."""
        blob = self._blob(key)
        try:
            return blob.download_as_bytes(retry=self._retry)
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
        blob = self._blob(key)
        try:
            return blob.download_as_bytes(start=start, end=start + length - 1, retry=self._retry)
        except api.RequestRangeNotSatisfiable:
            return b""  # the range starts at or past the object's end
        except api.NotFound as exc:
            raise self._missing("get_range", key) from exc
        except _FAILURES as exc:
            raise self._error("get_range", key, exc) from exc

    def put(self, key: str, data: bytes) -> None:
        """Write the object, replacing any existing one."""
        blob = self._blob(key)
        try:
            # Not retried by default (no precondition); rewriting the same bytes is safe here.
            blob.upload_from_string(data, content_type=_CONTENT_TYPE, retry=self._retry)
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
            blob = self._blob(key)
            blob.metadata = {CREATE_TOKEN: token}
            try:
                blob.upload_from_string(data, content_type=_CONTENT_TYPE, if_generation_match=0, retry=self._retry)
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
        """Yield objects whose key starts with ``prefix``, in ascending key order, after ``start_after``."""
        after = join_key(self._root, start_after) if start_after is not None else None
        skip = len(self._root) + 1 if self._root else 0
        try:
            # start_offset is inclusive: the start_after key itself is dropped below.
            blobs = self._client.list_blobs(
                self._bucket, prefix=join_key(self._root, prefix), start_offset=after, retry=self._retry
            )
            for blob in blobs:
                if blob.name != after:
                    yield ObjectInfo(blob.name[skip:], blob.size, blob.updated.astimezone(UTC))
        except api.NotFound as exc:
            raise self._no_bucket("list", prefix) from exc
        except _FAILURES as exc:
            raise self._error("list", prefix, exc) from exc

    def delete(self, key: str) -> None:
        """Delete the object; a missing object is not an error."""
        blob = self._blob(key)
        try:
            # Not retried by default (no generation given); a retry finding the object gone is fine here.
            blob.delete(retry=self._retry)
        except api.NotFound as exc:
            if isinstance(self._missing("delete", key), BucketNotFound):
                raise self._no_bucket("delete", key) from exc
        except _FAILURES as exc:
            raise self._error("delete", key, exc) from exc

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    # --- internals ---------------------------------------------------------------------------------------

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
        try:
            return self._bucket.get_blob(join_key(self._root, check_key(key)), retry=self._retry)
        except _FAILURES as exc:
            raise self._error(op, key, exc) from exc

    def _missing(self, op: str, key: str) -> StoreError:
        """For a 404 on an object: BucketNotFound if the bucket is missing, else ObjectNotFound."""
        try:
            if not self._bucket.exists(retry=self._retry):
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
        if isinstance(exc, api.RetryError) and exc.cause is not None:
            exc = exc.cause
        if isinstance(exc, (api.Forbidden, api.Unauthorized, auth.RefreshError)):
            return AccessDenied(f"{where}: access denied ({_brief(exc)})")
        if isinstance(exc, api.NotFound):
            return self._missing(op, key)  # for a write, only the bucket can be missing
        if isinstance(exc, (requests.ConnectionError, ConnectionError)):
            return StoreError(f"{where}: cannot connect to {self._endpoint}: {_brief(exc)}")
        return StoreError(f"{where} (endpoint {self._endpoint}): {_brief(exc)}")


_FAILURES = (
    api.GoogleAPICallError,
    api.RetryError,
    auth.GoogleAuthError,
    media.InvalidResponse,
    media.DataCorruption,
    requests.RequestException,
    OSError,
)


def _brief(exc: Exception) -> str:
    """An exception's first line (google's messages repeat the whole response), without URL passwords."""
    text = scrub(str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__
