"""``pyrostore iceberg sync``: register a topic's committed segments not yet in its Iceberg table.

Each run is one Iceberg commit (a fast append) that adds the data files and records the new sync state (see
:mod:`pyrostore.iceberg.plan`) as a snapshot property of that same snapshot, and as a table property updated in
the same catalog commit. Nothing is copied or rewritten: a data file's path is the segment's own location, and
its statistics come from the segment's footer. Only segments named by the index's newest commit are added, so
uncommitted uploads and lost ranges never appear. Two syncs racing on one table: the catalog accepts one commit
and refuses the other (its base snapshot is stale); the refused one changes nothing.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow.parquet as pq
from pyiceberg.io.pyarrow import (
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.table import Table
from pyiceberg.table.snapshots import ancestors_of
from pyiceberg.typedef import Record

from pyrostore.archive import Archive
from pyrostore.errors import IntegrityError
from pyrostore.iceberg.plan import (
    STATE_PROPERTY,
    PartitionPlan,
    SyncPlan,
    SyncState,
    check_topic_matches,
    decode_state,
    encode_state,
    plan_partition,
    plan_sync,
)
from pyrostore.iceberg.table import NAME_MAPPING_PROPERTY, name_mapping
from pyrostore.index.node import Entry

log = logging.getLogger(__name__)
FOOTER_READERS = 16  # footers are small reads: latency, not bandwidth, bounds them


@dataclass(frozen=True)
class SyncResult:
    """What one sync did: segments and records added, and the snapshot that added them (None: nothing to add)."""

    segments: int
    records: int
    snapshot_id: int | None
    state: SyncState


def table_state(table: Table, topic: str) -> SyncState:
    """The sync state a table records: that of the newest snapshot in the current snapshot's ancestry carrying
    one (the state of the data the table shows, also after a rollback), else the table property (snapshots that
    carried it may have been expired), else nothing synced."""
    name = ".".join(table.name())
    for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
        text = snapshot.summary.additional_properties.get(STATE_PROPERTY) if snapshot.summary else None
        if text is not None:
            return decode_state(text, f"table {name} snapshot {snapshot.snapshot_id}")
    text = table.properties.get(STATE_PROPERTY)
    if text is not None:
        return decode_state(text, f"table {name}")
    return SyncState(topic)


def plan_topic(archive: Archive, topic: str, state: SyncState) -> SyncPlan:
    """The segments of ``topic``'s newest commits (every partition) not yet in the table."""
    plans: list[PartitionPlan] = []
    for partition in archive.partitions(topic):
        reader = archive.partition(topic, partition)
        commit = reader.commit
        end = state.end(partition)
        leaves = reader.segments(end) if commit.root is not None and end < commit.next_offset else iter(())
        plans.append(plan_partition(partition, commit.seq, commit.next_offset, leaves, end))
    return plan_sync(state, plans)


def data_file(table: Table, location: str, partition: int, entry: Entry) -> DataFile:
    """The Iceberg data file of one segment: its location, size, partition value and footer statistics."""
    with table.io.new_input(location).open() as stream:
        metadata = pq.read_metadata(stream)
    facts = metadata.metadata or {}
    if facts.get(b"pyrostore.format") != b"1" or facts.get(b"pyrostore.partition") != str(partition).encode():
        raise IntegrityError(f"{location} is not a format 1 segment of partition {partition}")
    if metadata.num_rows != entry.records:
        raise IntegrityError(f"{location} holds {metadata.num_rows} records, its index entry {entry.records}")
    schema = table.metadata.schema()
    statistics = data_file_statistics_from_parquet_metadata(
        parquet_metadata=metadata,
        stats_columns=compute_statistics_plan(schema, table.metadata.properties),
        parquet_column_mapping=parquet_path_to_id_mapping(schema),
    )
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=location,
        file_format=FileFormat.PARQUET,
        partition=Record(partition),
        file_size_in_bytes=entry.bytes,
        sort_order_id=None,
        spec_id=table.metadata.default_spec_id,
        equality_ids=None,
        key_metadata=None,
        **statistics.to_serialized_dict(),
    )


def sync_topic(archive: Archive, topic: str, table: Table) -> SyncResult:
    """Register every committed segment of ``topic`` not yet in ``table``, in one Iceberg commit.

    Raises UsageError when the table holds another topic, IntegrityError when the archive does not match the
    state or a segment is not what its index says, pyiceberg's CommitFailedException when another sync
    committed first (nothing is changed; run again).
    """
    state = table_state(table, topic)
    check_topic_matches(state, topic, ".".join(table.name()))
    plan = plan_topic(archive, topic, state)
    if plan.segments == 0:
        return SyncResult(0, 0, None, state)
    work = [(p.partition, e) for p in plan.partitions for e in p.segments]
    with ThreadPoolExecutor(FOOTER_READERS) as pool:
        files = list(
            pool.map(
                lambda item: data_file(
                    table, archive.store.location(item[1].segment_key(topic, item[0])), item[0], item[1]
                ),
                work,
            )
        )
    value = encode_state(plan.state)
    transaction = table.transaction()
    updates = {STATE_PROPERTY: value}
    if NAME_MAPPING_PROPERTY not in table.properties:
        updates[NAME_MAPPING_PROPERTY] = name_mapping(table)
    transaction.set_properties(updates)
    with transaction.update_snapshot(snapshot_properties={STATE_PROPERTY: value}).fast_append() as append:
        for file in files:
            append.append_data_file(file)
    transaction.commit_transaction()
    snapshot = table.current_snapshot()
    records = sum(e.records for _, e in work)
    log.info("synced %d segments (%d records) of %s into %s", len(files), records, topic, ".".join(table.name()))
    return SyncResult(len(files), records, snapshot.snapshot_id if snapshot else None, plan.state)
