"""``pyrostore serve``: the archive over the Kafka wire protocol, for unmodified Kafka clients.

A read-only server that presents itself as a one-broker cluster leading every partition of the served topics,
in the spirit of franz-go's ``kfake``: small modules with one job each. ``protocol`` frames and decodes with
kio's types, ``connection`` answers one client in request order, ``apis/`` has one module per Kafka API,
``batches`` builds v2 record batches from segments with aiokafka's builder, ``cache`` keeps built batches,
``catalog`` knows the topics and each partition's newest commit, ``decisions`` holds the pure choices, and
``groups/`` coordinates consumer groups and keeps their committed offsets in the archive's store.
"""

from __future__ import annotations

from pyrostore.serve.config import Address, Compression, ServeConfig, parse_address
from pyrostore.serve.server import Server, run

__all__ = ["Address", "Compression", "ServeConfig", "Server", "parse_address", "run"]
