"""Object stores: the :class:`ObjectStore` contract, and :func:`open_store` to open one from a URL.

Backends: a local folder (a plain path or ``file:///abs/dir``), S3 (``s3://bucket/prefix``) and Google
Cloud Storage (``gs://bucket/prefix``). The S3 and GCS libraries are imported only when such a store opens.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType

from pyrostore.errors import InvalidStoreURL
from pyrostore.store._url import Location, parse_options, parse_url, redact
from pyrostore.store.base import ObjectInfo, ObjectStore

__all__ = ["ObjectInfo", "ObjectStore", "open_store"]

# scheme -> (module, class). Each module declares OPTIONS (name -> type) and READ_ONLY (option values a
# read-only opening imposes).
_BACKENDS = {"file": ("file", "FileStore"), "s3": ("s3", "S3Store"), "gs": ("gcs", "GCSStore")}


def open_store(url: str, *, read_only: bool = False, **options: object) -> ObjectStore:
    """Open the store at ``url`` with backend ``options`` (strings such as ``"true"`` or ``"5"`` are parsed).

    Options: every backend: ``retry_deadline`` (seconds an operation may spend retrying transient failures,
    then StoreUnreachable for an endpoint that cannot be reached; absent or ``inf``: retry for ever, logging
    each retry; the file store accepts and ignores it). file: ``create`` (default true: make the folder if
    missing). s3: ``endpoint_url``, ``region``, ``access_key_id``, ``secret_access_key``, ``session_token``,
    ``profile``. gs: ``endpoint_url``, ``project``, ``credentials_file``.

    ``read_only``: the caller means to use an existing store, so opening creates nothing (a missing folder
    is BucketNotFound at the first operation, and ``create=true`` is refused). Writes are not blocked:
    ``gc`` deletes through a store it opened this way.

    Raises InvalidStoreURL for a bad URL or option, and AccessDenied or StoreError when the backend cannot
    be set up.
    """
    location, backend = _backend(url)
    kwargs = parse_options(url, options, backend.OPTIONS)
    if read_only:
        kwargs = _read_only(url, kwargs, backend.READ_ONLY)
    opener = getattr(backend, _BACKENDS[location.scheme][1])
    if location.scheme == "file":
        return opener(location.bucket, **kwargs)
    return opener(location.bucket, location.prefix, **kwargs)


def _backend(url: str) -> tuple[Location, ModuleType]:
    """Where ``url`` points, and the module of its backend. Raises InvalidStoreURL."""
    location = parse_url(url)
    return location, importlib.import_module(f"pyrostore.store.{_BACKENDS[location.scheme][0]}")


def _read_only(url: str, kwargs: dict[str, object], imposed: Mapping[str, object]) -> dict[str, object]:
    """``kwargs`` with the backend's read-only values; refuses an option that contradicts one."""
    for name, value in imposed.items():
        if kwargs.get(name, value) != value:
            raise InvalidStoreURL(
                f"store {redact(url)!r}: option {name!r} cannot be {kwargs[name]!r} when opening read-only"
            )
    return kwargs | dict(imposed)
