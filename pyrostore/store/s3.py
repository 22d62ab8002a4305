"""An object store in an S3 bucket (AWS, or a compatible server such as MinIO), through boto3."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    ProfileNotFound,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from pyrostore.errors import (
    AccessDenied,
    BucketNotFound,
    InvalidStoreURL,
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
    "region": str,
    "access_key_id": str,
    "secret_access_key": str,
    "session_token": str,
    "profile": str,
    "retry_deadline": float,
    "ca_bundle": str,
    "credentials_dir": str,
}
# Environment variables (and Secret keys) that carry S3 credentials, and the options they become.
CREDENTIALS: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "access_key_id",
    "AWS_SECRET_ACCESS_KEY": "secret_access_key",
    "AWS_SESSION_TOKEN": "session_token",
}
# Options a read-only opening sets: none, opening an S3 store creates nothing.
READ_ONLY: dict[str, object] = {}

T = TypeVar("T")

_DENIED = {
    "AccessDenied",
    "AllAccessDisabled",
    "ExpiredToken",
    "InvalidAccessKeyId",
    "InvalidToken",
    "SignatureDoesNotMatch",
    "TokenRefreshRequired",
}
# S3 answers 409 ConditionalRequestConflict while another conditional write of the key is in flight; the
# key may yet stay free, so a create looks again a few times before giving up.
_CONFLICT_ATTEMPTS = 5
# S3 error codes worth another attempt, beside the HTTP statuses every backend retries (boto3's own retries are off).
_TRANSIENT_CODES = {
    "InternalError",
    "RequestTimeout",
    "ServiceUnavailable",
    "SlowDown",
    "Throttling",
    "ThrottlingException",
}


def folder_credentials(url: str, folder: str) -> tuple[str, str, str | None]:
    """The key id, secret key and session token (None: no such file) held by the files of ``folder`` named like
    the environment variables. Raises InvalidStoreURL naming a missing file (never quoting a value)."""
    found: dict[str, str | None] = {}
    for variable in CREDENTIALS:
        try:
            with open(os.path.join(folder, variable), encoding="utf-8") as f:
                found[variable] = f.read().strip()
        except FileNotFoundError:
            found[variable] = None
        except OSError as exc:
            what = f"open {url}: credentials_dir {folder!r}: cannot read {variable}"
            raise InvalidStoreURL(f"{what}: {exc.strerror}") from None
    key_id, secret = found["AWS_ACCESS_KEY_ID"], found["AWS_SECRET_ACCESS_KEY"]
    if not key_id or not secret:
        raise InvalidStoreURL(
            f"open {url}: credentials_dir {folder!r} needs files AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    return key_id, secret, found["AWS_SESSION_TOKEN"] or None


def store_region(region: str | None, environment: Mapping[str, str], configured: str | None = None) -> str:
    """The region an S3 store works in: its ``region`` option, else ``AWS_REGION`` (botocore reads only
    ``AWS_DEFAULT_REGION``; other AWS SDKs prefer ``AWS_REGION``), else the profile's or config file's
    (``configured``), else us-east-1. Everything else reading a store's objects (pyarrow, pyiceberg) uses it too."""
    return region or environment.get("AWS_REGION") or configured or "us-east-1"


class S3Store:
    """Objects under ``prefix`` in an S3 bucket. Connection failures, throttling and 5xx answers are retried
    with backoff until ``retry_deadline`` (see :class:`~pyrostore.store._retry.Retrier`)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        profile: str | None = None,
        retry_deadline: float | None = None,
        ca_bundle: str | None = None,
        credentials_dir: str | None = None,
    ) -> None:
        """Open the store; options left out come from the standard AWS environment variables and files.

        ``retry_deadline``: seconds an operation may spend retrying transient failures before it raises
        (StoreUnreachable when the endpoint cannot be reached); None or infinite: retry for ever. Nothing is
        sent to the storage server until the first operation. ``ca_bundle``: a PEM file of the CAs to trust for
        an HTTPS endpoint signed by a private CA (default: the system's, or ``AWS_CA_BUNDLE``).
        ``credentials_dir``: a folder holding files named ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and
        optionally ``AWS_SESSION_TOKEN`` (a Kubernetes Secret of that shape mounted as a volume), read once here;
        it gives one store its own credentials where the environment's serve another (a mirror's target). Raises
        InvalidStoreURL for a bad option.
        """
        self._bucket = bucket
        self._root = prefix.strip("/")
        self._url = f"s3://{bucket}/{self._root}" if self._root else f"s3://{bucket}"
        self._endpoint = redact(endpoint_url) if endpoint_url else "AWS S3"
        if credentials_dir is not None:
            if access_key_id is not None or secret_access_key is not None:
                raise InvalidStoreURL(f"open {self._url}: give credentials_dir or access_key_id, not both")
            access_key_id, secret_access_key, session_token = folder_credentials(self._url, credentials_dir)
        if (access_key_id is None) != (secret_access_key is None):
            raise InvalidStoreURL(f"open {self._url}: give access_key_id and secret_access_key together")
        if ca_bundle is not None and not os.path.isfile(ca_bundle):
            raise InvalidStoreURL(f"open {self._url}: ca_bundle {ca_bundle!r} is not a readable file")
        self._deadline = check_deadline(self._url, retry_deadline)
        self._retrier = Retrier(self._url, self._endpoint, self._deadline, _transient, lambda exc: scrub(str(exc)))
        connect_timeout, read_timeout = attempt_timeouts(self._deadline)
        try:
            session = boto3.session.Session(
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                aws_session_token=session_token,
                profile_name=profile,
            )
            config = Config(
                region_name=store_region(region, os.environ, session.region_name),
                retries={"mode": "standard", "total_max_attempts": 1},  # self._retrier retries instead
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                max_pool_connections=32,
                # MinIO and most S3-compatible servers want bucket names in the path, not the host name.
                s3={"addressing_style": "path"} if endpoint_url else None,
            )
            self._client = session.client("s3", endpoint_url=endpoint_url, config=config, verify=ca_bundle)
        except ProfileNotFound as exc:
            raise InvalidStoreURL(f"open {self._url}: AWS profile {exc.kwargs.get('profile')!r} not found") from exc
        except ValueError as exc:  # botocore's answer to a malformed endpoint URL
            raise InvalidStoreURL(f"open {self._url}: bad endpoint_url {self._endpoint!r}: {scrub(str(exc))}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"open {self._url}: {scrub(str(exc))}") from exc

    @property
    def url(self) -> str:
        """``s3://bucket/prefix``."""
        return self._url

    def location(self, key: str) -> str:
        """``s3://bucket/prefix/key``, as DuckDB, Arrow and Spark name the object (not percent-encoded)."""
        return f"s3://{self._bucket}/{self._name(key)}"

    def get(self, key: str) -> bytes:
        """Return the whole object."""
        name = self._name(key)
        try:
            # Reading the body is part of the attempt: a connection lost mid-body is retried too.
            return self._call("get", key, lambda: self._client.get_object(Bucket=self._bucket, Key=name)["Body"].read())
        except (BotoCoreError, ClientError) as exc:
            raise self._error("get", key, exc) from exc

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Return ``length`` bytes from ``start`` (fewer at the object's end)."""
        if start < 0 or length < 0:
            raise ValueError(f"get_range {key!r}: start and length must be >= 0, not {start}, {length}")
        if length == 0:
            self.stat(key)  # still report a missing object
            return b""
        name, wanted = self._name(key), f"bytes={start}-{start + length - 1}"
        try:
            return self._call(
                "get_range",
                key,
                lambda: self._client.get_object(Bucket=self._bucket, Key=name, Range=wanted)["Body"].read(),
            )
        except ClientError as exc:
            if _status(exc) == 416:
                return b""  # the range starts at or past the object's end
            raise self._error("get_range", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("get_range", key, exc) from exc

    def put(self, key: str, data: bytes) -> None:
        """Write the object, replacing any existing one."""
        name = self._name(key)
        try:
            self._call("put", key, lambda: self._client.put_object(Bucket=self._bucket, Key=name, Body=data))
        except (BotoCoreError, ClientError) as exc:
            raise self._error("put", key, exc) from exc

    def create(self, key: str, data: bytes) -> None:
        """Write the object only if the key is free (``If-None-Match: *``).

        The object carries a token naming this call, so that a retry whose first attempt did land (and so
        fails its precondition) is recognised as a success rather than a lost race.
        """
        name = self._name(key)
        token = new_create_token()
        for attempt in range(_CONFLICT_ATTEMPTS):
            try:
                self._call(
                    "create",
                    key,
                    lambda: self._client.put_object(
                        Bucket=self._bucket, Key=name, Body=data, IfNoneMatch="*", Metadata={CREATE_TOKEN: token}
                    ),
                )
                return
            except ClientError as exc:
                if _status(exc) not in (409, 412):
                    raise self._error("create", key, exc) from exc
                holder = self._metadata("create", key)
                if holder is not None:
                    if created_by_us(token, holder):
                        return
                    raise ObjectExists(f"create {key!r} in {self._url}: the object already exists") from None
                time.sleep(0.05 * 2**attempt)  # a conflicting write is in flight, or the object just went
            except BotoCoreError as exc:
                raise self._error("create", key, exc) from exc
        raise StoreError(f"create {key!r} in {self._url}: concurrent writes of the key kept conflicting")

    def stat(self, key: str) -> ObjectInfo:
        """Return the object's size and modification time."""
        name = self._name(key)
        try:
            answer = self._call("stat", key, lambda: self._client.head_object(Bucket=self._bucket, Key=name))
        except ClientError as exc:
            if _status(exc) == 404:
                raise self._missing("stat", key) from exc
            raise self._error("stat", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("stat", key, exc) from exc
        return ObjectInfo(key, answer["ContentLength"], answer["LastModified"].astimezone(UTC))

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Yield objects whose key starts with ``prefix``, in ascending key order, after ``start_after``.

        Pages are fetched one by one (each retried on its own), so a retry never repeats a yielded object.
        """
        query: dict[str, Any] = {"Bucket": self._bucket, "Prefix": join_key(self._root, prefix)}
        if start_after is not None:
            query["StartAfter"] = join_key(self._root, start_after)
        skip = len(self._root) + 1 if self._root else 0
        while True:
            try:
                page = self._call("list", prefix, lambda: self._client.list_objects_v2(**query))
            except (BotoCoreError, ClientError) as exc:
                raise self._error("list", prefix, exc) from exc
            for item in page.get("Contents", ()):
                yield ObjectInfo(item["Key"][skip:], item["Size"], item["LastModified"].astimezone(UTC))
            if not page.get("IsTruncated"):
                return
            query["ContinuationToken"] = page["NextContinuationToken"]

    def delete(self, key: str) -> None:
        """Delete the object; a missing object is not an error."""
        name = self._name(key)
        try:
            self._call("delete", key, lambda: self._client.delete_object(Bucket=self._bucket, Key=name))
        except ClientError as exc:
            if _code(exc) == "NoSuchBucket" or _status(exc) != 404:
                raise self._error("delete", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("delete", key, exc) from exc

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    # --- internals ---------------------------------------------------------------------------------------

    def _call(self, op: str, key: str, call: Callable[[], T]) -> T:
        """One client call, retried on transient failures until the deadline; raises boto3's last error."""
        return self._retrier.run(op, key, call)

    def _name(self, key: str) -> str:
        """The bucket's name for ``key``."""
        return join_key(self._root, check_key(key))

    def _metadata(self, op: str, key: str) -> dict[str, str] | None:
        """The object's user metadata, or None if there is no such object."""
        name = self._name(key)
        try:
            return self._call(op, key, lambda: self._client.head_object(Bucket=self._bucket, Key=name))["Metadata"]
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise self._error(op, key, exc) from exc
        except BotoCoreError as exc:
            raise self._error(op, key, exc) from exc

    def _missing(self, op: str, key: str) -> StoreError:
        """For a bare 404 (HEAD answers carry no error code): BucketNotFound or ObjectNotFound."""
        try:
            self._call(op, key, lambda: self._client.head_bucket(Bucket=self._bucket))
        except ClientError as exc:
            if _status(exc) == 404:
                return self._no_bucket(op, key)
        except BotoCoreError:
            pass  # the object is missing either way
        return ObjectNotFound(f"{op} {key!r} from {self._url}: no such object")

    def _no_bucket(self, op: str, key: str) -> BucketNotFound:
        """The error for a bucket that does not exist."""
        return BucketNotFound(f"{op} {key!r} in {self._url}: bucket {self._bucket!r} does not exist")

    def _error(self, op: str, key: str, exc: Exception) -> StoreError:
        """Wrap a boto3 error as the matching StoreError."""
        where = f"{op} {key!r} in {self._url}"
        if isinstance(exc, ClientError):
            code, status = _code(exc), _status(exc)
            if code == "NoSuchBucket":
                return self._no_bucket(op, key)
            if code in ("SignatureDoesNotMatch", "InvalidAccessKeyId"):
                return AccessDenied(f"{where}: access denied: the credentials were refused ({code})")
            if code in _DENIED or status == 403:
                return AccessDenied(f"{where}: access denied ({code or status})")
            if code == "NoSuchKey" or status == 404:
                return ObjectNotFound(f"{op} {key!r} from {self._url}: no such object")
            message = exc.response.get("Error", {}).get("Message", "")
            return StoreError(f"{where}: {code or status}: {message}".rstrip(": "))
        if isinstance(exc, NoCredentialsError):
            return AccessDenied(f"{where}: no AWS credentials in the options, environment or config files")
        if isinstance(exc, SSLError):
            return StoreError(
                f"{where}: TLS with {self._endpoint} failed: {scrub(str(exc))} (trust a private CA with the store "
                "option ca_bundle=FILE)"
            )
        if _unreachable(exc):
            return unreachable(where, self._endpoint, self._deadline, scrub(str(exc)))
        return StoreError(f"{where} (endpoint {self._endpoint}): {scrub(str(exc))}")


def _unreachable(exc: Exception) -> bool:
    """Whether a failure means the endpoint could not be reached or did not answer (a certificate error is
    not: waiting will not fix it)."""
    if isinstance(exc, SSLError):
        return False
    return isinstance(exc, (BotoConnectionError, HTTPClientError, IncompleteReadError))


def _transient(exc: Exception) -> bool:
    """Whether a failure may go away on its own: an unreachable endpoint, throttling, a server error."""
    if isinstance(exc, ClientError):
        return _code(exc) in _TRANSIENT_CODES or _status(exc) in TRANSIENT_STATUSES
    return _unreachable(exc)


def _code(exc: ClientError) -> str:
    """The S3 error code of a failed call (``"404"`` for bodiless HEAD answers)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int | None:
    """The HTTP status of a failed call."""
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
