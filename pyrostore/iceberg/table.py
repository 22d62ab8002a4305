"""The Iceberg table of a topic: its schema, partitioning and creation.

The columns are a segment's (docs/format.md §4.1) plus ``partition``. Segments hold no partition column, and
Iceberg refuses data files with columns the table lacks, so ``partition`` is an identity-partitioned column that
no file holds: each data file carries its partition number as its partition value, and readers fill the column
from it (the Iceberg spec's rule for identity partition columns missing from a file; pyiceberg and Spark do,
tested; Trino untested). Filtering or grouping by partition then prunes whole files too.
"""

from __future__ import annotations

import contextlib

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import (
    BinaryType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    StringType,
    StructType,
    TimestamptzType,
)

PARTITION_FIELD_ID = 1
SCHEMA = Schema(
    # Optional although every row has one: no data file holds it (it comes from the file's partition value).
    NestedField(PARTITION_FIELD_ID, "partition", IntegerType(), required=False),
    NestedField(2, "offset", LongType(), required=True),
    NestedField(3, "timestamp", TimestamptzType(), required=True),
    NestedField(4, "timestamp_type", IntegerType(), required=True),
    NestedField(5, "key", BinaryType(), required=False),
    NestedField(6, "value", BinaryType(), required=False),
    NestedField(
        7,
        "headers",
        ListType(
            8,
            StructType(
                NestedField(9, "key", StringType(), required=True),
                NestedField(10, "value", BinaryType(), required=False),
            ),
            element_required=True,
        ),
        required=True,
    ),
    NestedField(11, "leader_epoch", IntegerType(), required=False),
)
"""The table's schema (the catalog assigns fresh field ids when it creates the table)."""

SPEC = PartitionSpec(PartitionField(PARTITION_FIELD_ID, 1000, IdentityTransform(), "partition"))

NAME_MAPPING_PROPERTY = "schema.name-mapping.default"

# Data-file statistics where ranges mean something (as in the segments' own footers, docs/format.md §4.3):
# offset and timestamp prune files for offset and time predicates; key, value and headers have none.
# gc.enabled false: the table does not own its files (Iceberg's switch for that): engines then refuse to delete
# them when expiring snapshots or removing orphan files.
PROPERTIES = {
    "gc.enabled": "false",
    "write.metadata.metrics.default": "none",
    **{f"write.metadata.metrics.column.{c}": "full" for c in ("offset", "timestamp", "timestamp_type", "leader_epoch")},
}


def open_table(
    catalog: Catalog, identifier: tuple[str, str], location: str | None = None, fallback: str | None = None
) -> Table:
    """The table ``(namespace, name)``, created (with its namespace) when it does not exist: at ``location``,
    else in the catalog's warehouse, else at ``fallback``."""
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        pass
    namespace = identifier[0]
    with contextlib.suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(namespace)
    if location is None and "warehouse" not in catalog.properties:
        location = fallback
    return catalog.create_table_if_not_exists(
        identifier, SCHEMA, location=location, partition_spec=SPEC, properties=PROPERTIES
    )


def name_mapping(table: Table) -> str:
    """The name mapping by which readers find the table's columns in segments (which carry no field ids)."""
    return table.metadata.schema().name_mapping.model_dump_json()
