"""pyarrow filesystems for an archive's store, from the same URL and options the store was opened with.

DuckDB reads the segments through pyarrow (S3, GCS, a local folder), so no DuckDB extension is downloaded at run
time. The store has already checked the options; here they are only translated to pyarrow's arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from pyrostore.errors import AccessDenied, InvalidStoreURL
from pyrostore.store import ObjectStore


def endpoint_arguments(endpoint_url: str) -> dict[str, str]:
    """``http://host:port`` as pyarrow's ``endpoint_override`` (``host:port``) and ``scheme``."""
    parts = urlsplit(endpoint_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidStoreURL(f"endpoint_url {endpoint_url!r} is not an http:// or https:// URL")
    return {"endpoint_override": parts.netloc + parts.path.rstrip("/"), "scheme": parts.scheme}


def s3_arguments(options: Mapping[str, Any], environment: Mapping[str, str]) -> dict[str, Any]:
    """``pyarrow.fs.S3FileSystem`` arguments for the S3 store options (``endpoint_url``, ``region``, the keys, and
    ``ca_bundle``: the CAs to trust for an S3 server with a private certificate).

    The region is the store's (:func:`~pyrostore.store.s3.store_region`); a profile, and its region, are resolved
    by :func:`s3_filesystem` (pyarrow has no profile argument). Path-style addressing is pyarrow's default, which is
    what MinIO and most S3-compatible servers want.
    """
    from pyrostore.store.s3 import store_region  # boto3 is imported only for S3 stores

    arguments: dict[str, Any] = {"region": store_region(options.get("region"), environment)}
    if options.get("endpoint_url"):
        arguments.update(endpoint_arguments(str(options["endpoint_url"])))
    for option, argument in (
        ("access_key_id", "access_key"),
        ("secret_access_key", "secret_key"),
        ("session_token", "session_token"),
        ("ca_bundle", "tls_ca_file_path"),
    ):
        if options.get(option):
            arguments[argument] = str(options[option])
    return arguments


def s3_filesystem(options: Mapping[str, Any]) -> pafs.FileSystem:
    """An S3 filesystem; without keys in the options, credentials come from boto3's chain (the environment, the
    config files and ``profile``, instance roles), as the store's own do."""
    arguments = s3_arguments(options, os.environ)
    if "access_key" not in arguments:
        import boto3.session

        from pyrostore.store.s3 import store_region

        session = boto3.session.Session(profile_name=options.get("profile"))
        found = session.get_credentials()
        if found is not None:
            frozen = found.get_frozen_credentials()
            arguments.update(access_key=frozen.access_key, secret_key=frozen.secret_key)
            if frozen.token:
                arguments["session_token"] = frozen.token
        arguments["region"] = store_region(options.get("region"), os.environ, session.region_name)
    return pafs.S3FileSystem(**arguments)


def gcs_arguments(options: Mapping[str, Any]) -> dict[str, Any]:
    """``pyarrow.fs.GcsFileSystem`` arguments for the GCS store options without a ``credentials_file``: anonymous
    for an emulator at ``endpoint_url`` (as the store is), Google's default credentials otherwise."""
    arguments: dict[str, Any] = {}
    if options.get("project"):
        arguments["project_id"] = str(options["project"])
    if options.get("endpoint_url"):
        arguments.update(endpoint_arguments(str(options["endpoint_url"])))
        arguments["anonymous"] = not options.get("credentials_file")
    return arguments


def gcs_filesystem(options: Mapping[str, Any]) -> pafs.FileSystem:
    """A GCS filesystem; a ``credentials_file`` (any kind google-auth loads) gives pyarrow an access token."""
    arguments = gcs_arguments(options)
    if options.get("credentials_file"):
        import google.auth
        import google.auth.transport.requests
        from google.auth.exceptions import GoogleAuthError

        try:
            credentials, _ = google.auth.load_credentials_from_file(
                str(options["credentials_file"]), scopes=["https://www.googleapis.com/auth/devstorage.read_only"]
            )
            credentials.refresh(google.auth.transport.requests.Request())
        except (GoogleAuthError, OSError) as exc:
            raise AccessDenied(f"GCS credentials_file {options['credentials_file']!r}: {exc}") from None
        arguments.update(access_token=credentials.token, credential_token_expiration=credentials.expiry)
    return pafs.GcsFileSystem(**arguments)


def arrow_filesystem(store: ObjectStore, options: Mapping[str, Any]) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem holding ``store``'s objects (opened with ``options``), and the scheme prefix to strip
    from :meth:`ObjectStore.location` to get a path in it (``s3://``, ``gs://``, or nothing for a folder)."""
    scheme = store.url.partition("://")[0]
    if scheme == "s3":
        return s3_filesystem(options), "s3://"
    if scheme == "gs":
        return gcs_filesystem(options), "gs://"
    return pafs.LocalFileSystem(), ""
