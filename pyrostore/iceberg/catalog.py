"""The Iceberg catalog a sync writes to, from pyiceberg's configuration or a catalog URI (pure parts tested)."""

from __future__ import annotations

from collections.abc import Mapping

from pyiceberg.catalog import Catalog, load_catalog

from pyrostore.errors import UsageError
from pyrostore.iceberg import URI_CATALOG_NAME
from pyrostore.layout import check_topic

# Store options of an S3 archive (pyrostore/store/s3.py) and the pyiceberg FileIO properties that read the same
# objects: readers of the table (and the sync, for segment footers) reach the segments with them.
_S3_PROPERTIES = {
    "endpoint_url": "s3.endpoint",
    "region": "s3.region",
    "access_key_id": "s3.access-key-id",
    "secret_access_key": "s3.secret-access-key",
}


def catalog_properties(
    uri: str | None,
    properties: Mapping[str, str],
    store_url: str,
    store_options: Mapping[str, str],
    default_region: str = "us-east-1",
) -> dict[str, str]:
    """Catalog properties: the URI (``sqlite:///…``, ``postgresql://…``, ``http(s)://…`` for REST) if given,
    the S3 FileIO properties the archive's own store options imply, then ``properties`` (which win).

    An S3 archive's region is the store's, else ``default_region``: without one, pyiceberg asks AWS where the
    bucket is (a request to AWS even for another S3 endpoint)."""
    result: dict[str, str] = {}
    if uri is not None:
        result["uri"] = uri
    if store_url.startswith("s3://"):
        result["s3.region"] = default_region
        result.update({_S3_PROPERTIES[k]: str(v) for k, v in store_options.items() if k in _S3_PROPERTIES})
    result.update(properties)
    return result


def parse_table(identifier: str) -> tuple[str, str]:
    """``NAMESPACE.TABLE`` split at its first dot (topic names may hold dots; the namespace then may not).
    Raises UsageError."""
    namespace, dot, name = identifier.partition(".")
    if not dot or not namespace or not name:
        raise UsageError(f"--table {identifier!r}: give NAMESPACE.TABLE, e.g. kafka.orders")
    return namespace, name


def default_topic(identifier: str) -> str:
    """The topic a table of that name holds by default: its last part. Raises UsageError."""
    return check_topic(parse_table(identifier)[1])


def open_catalog(name: str | None, uri: str | None, properties: Mapping[str, str]) -> Catalog:
    """The catalog named ``name`` in pyiceberg's configuration (``~/.pyiceberg.yaml``, ``PYICEBERG_CATALOG__…``
    variables), or the one at ``uri`` (named :data:`URI_CATALOG_NAME`: a SQL catalog keeps tables per catalog
    name, so engines reading it give that name); ``properties`` add to or override its configuration. Raises
    UsageError.
    """
    if (name is None) == (uri is None):
        raise UsageError("give exactly one of --catalog NAME and --catalog-uri URI")
    try:
        return load_catalog(name or URI_CATALOG_NAME, **properties)
    except (ValueError, KeyError, TypeError, NotImplementedError) as exc:
        raise UsageError(f"catalog {name or uri}: {exc}") from exc
