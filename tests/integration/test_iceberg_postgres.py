"""``pyrostore iceberg sync`` into a PostgreSQL SQL catalog (a real server) over the stack's MinIO: the same
table, readable through the same catalog by another client."""

from __future__ import annotations

from pathlib import Path

from pyiceberg.catalog.sql import SqlCatalog

from pyrostore.archive import Archive
from pyrostore.store import open_store
from tests.consumer_helpers import S3Archive
from tests.helpers import build_partition, make_segment
from tests.iceberg_helpers import (
    archive_table,
    committed_files,
    rows_by_partition,
    s3_properties,
    table_files,
    table_rows,
)
from tests.integration.test_iceberg_sync import Sync


def test_sync_into_a_postgresql_catalog(s3_server, postgres_server, tmp_path: Path) -> None:
    archive = S3Archive(s3_server)
    store = open_store(archive.url, **archive.store_options)
    writers = [build_partition(store, "orders", p, segments=3) for p in range(2)]
    uri = postgres_server.sqlalchemy_url()
    sync = Sync(archive, "orders", uri, tmp_path / "sync.log")
    assert "added 6 segment(s), 60 record(s)" in sync.run()
    writers[1].append([make_segment("orders", 1, writers[1].head.next_offset, 5)])
    assert "added 1 segment(s), 5 record(s)" in sync.run()
    assert "added 0 segment(s)" in sync.run()

    table = SqlCatalog("pyrostore", uri=uri, **s3_properties(s3_server)).load_table(("kafka", "orders"))
    reader = Archive(store)
    assert table_files(table) == committed_files(reader, "orders")
    assert table_rows(table) == rows_by_partition(archive_table(reader, "orders"))
    assert len(table.snapshots()) == 2
