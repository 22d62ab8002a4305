"""Object stores: the :class:`ObjectStore` contract, :func:`open_store` to open one from a URL, and
:func:`credential_options` to turn a Secret's (or the environment's) credentials into store options.

Backends: a local folder (a plain path or ``file:///abs/dir``), S3 (``s3://bucket/prefix``) and Google
Cloud Storage (``gs://bucket/prefix``). The S3 and GCS libraries are imported only when such a store is
opened or its credential options are asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType

from pyrostore.errors import InvalidStoreURL
from pyrostore.store._url import Location, parse_options, parse_url, redact
from pyrostore.store.base import ObjectInfo, ObjectStore

__all__ = ["ObjectInfo", "ObjectStore", "credential_options", "open_existing_store", "open_store"]

# scheme -> (module, class). Each module declares OPTIONS (name -> type), CREDENTIALS (environment variable
# or Secret key -> option) and READ_ONLY (option values a read-only opening imposes).
_BACKENDS = {"file": ("file", "FileStore"), "s3": ("s3", "S3Store"), "gs": ("gcs", "GCSStore")}


def open_store(url: str, **options: object) -> ObjectStore:
    """Open the store at ``url`` with backend ``options`` (strings such as ``"true"`` or ``"5"`` are parsed).

    Options: every backend: ``retry_deadline`` (seconds an operation may spend retrying transient failures,
    then StoreUnreachable for an endpoint that cannot be reached; absent or ``inf``: retry for ever, logging
    each retry; the file store accepts and ignores it). file: ``create`` (default true: make the folder if
    missing). s3: ``endpoint_url``, ``region``, ``access_key_id``, ``secret_access_key``, ``session_token``,
    ``profile``, ``ca_bundle``, ``credentials_dir``. gs: ``endpoint_url``, ``project``, ``credentials_file``.

    Raises InvalidStoreURL for a bad URL or option, and AccessDenied or StoreError when the backend cannot
    be set up.
    """
    return _open(url, options, read_only=False)


def open_existing_store(url: str, **options: object) -> ObjectStore:
    """Open a store that must exist already, as :func:`open_store` does, except that opening creates nothing: a
    missing folder is BucketNotFound at the first operation, and ``create=true`` is refused. Writes are not
    blocked (``gc`` deletes through a store opened this way). Raises as :func:`open_store`.
    """
    return _open(url, options, read_only=True)


def _open(url: str, options: Mapping[str, object], read_only: bool) -> ObjectStore:
    location, backend = _backend(url)
    kwargs = parse_options(url, options, backend.OPTIONS)
    if read_only:
        kwargs = _read_only(url, kwargs, backend.READ_ONLY)
    opener = getattr(backend, _BACKENDS[location.scheme][1])
    if location.scheme == "file":
        return opener(location.bucket, **kwargs)
    return opener(location.bucket, location.prefix, **kwargs)


def credential_options(url: str, secret_data: Mapping[str, str]) -> dict[str, str]:
    """The store options that the credentials in ``secret_data`` give the backend of ``url``.

    ``secret_data`` maps environment variable names to values, as a Kubernetes Secret mounted with
    ``envFrom`` (or ``os.environ``) does. S3 takes ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and
    ``AWS_SESSION_TOKEN``; GCS and local folders take none (GCS reads a mounted key file named by
    ``credentials_file``). Other keys are ignored. Raises InvalidStoreURL for a bad URL (never quoting a value).
    """
    _, backend = _backend(url)
    return {option: secret_data[key] for key, option in backend.CREDENTIALS.items() if key in secret_data}


def _backend(url: str) -> tuple[Location, ModuleType]:
    """Where ``url`` points, and the module of its backend. Raises InvalidStoreURL."""
    location = parse_url(url)
    return location, importlib.import_module(f"pyrostore.store.{_BACKENDS[location.scheme][0]}")


def _read_only(url: str, kwargs: dict[str, object], imposed: Mapping[str, object]) -> dict[str, object]:
    """``kwargs`` with the backend's read-only values; refuses an option that contradicts one."""
    for name, value in imposed.items():
        if kwargs.get(name, value) != value:
            raise InvalidStoreURL(
                f"store {redact(url)!r}: option {name!r} cannot be {kwargs[name]!r} when opening an existing store"
            )
    return kwargs | dict(imposed)
