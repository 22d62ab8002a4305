"""Object stores: the :class:`ObjectStore` contract, and :func:`open_store` to open one from a URL.

Backends: a local folder (a plain path or ``file:///abs/dir``), S3 (``s3://bucket/prefix``) and Google
Cloud Storage (``gs://bucket/prefix``). The S3 and GCS libraries are imported only when such a store opens.
"""

from __future__ import annotations

import importlib

from pyrostore.store._url import parse_options, parse_url
from pyrostore.store.base import ObjectInfo, ObjectStore

__all__ = ["ObjectInfo", "ObjectStore", "open_store"]

_BACKENDS = {"file": ("file", "FileStore"), "s3": ("s3", "S3Store"), "gs": ("gcs", "GCSStore")}


def open_store(url: str, **options: object) -> ObjectStore:
    """Open the store at ``url`` with backend ``options`` (strings such as ``"true"`` or ``"5"`` are parsed).

    Options: every backend: ``retry_deadline`` (seconds an operation may spend retrying transient failures,
    then StoreUnreachable for an endpoint that cannot be reached; absent or ``inf``: retry for ever, logging
    each retry; the file store accepts and ignores it). file: ``create`` (default true: make the folder if
    missing). s3: ``endpoint_url``, ``region``, ``access_key_id``, ``secret_access_key``, ``session_token``,
    ``profile``. gs: ``endpoint_url``, ``project``, ``credentials_file``.

    Raises InvalidStoreURL for a bad URL or option, and AccessDenied or StoreError when the backend cannot
    be set up.
    """
    location = parse_url(url)
    module_name, class_name = _BACKENDS[location.scheme]
    module = importlib.import_module(f"pyrostore.store.{module_name}")
    kwargs = parse_options(url, options, module.OPTIONS)
    backend = getattr(module, class_name)
    if location.scheme == "file":
        return backend(location.bucket, **kwargs)
    return backend(location.bucket, location.prefix, **kwargs)
