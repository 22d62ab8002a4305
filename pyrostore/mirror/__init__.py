"""Verified, incremental, crash-safe copies of an archive, by its Merkle tree (``pyrostore mirror`` and
``pyrostore diff``).

Per partition the mirror copies, in order, the commits the target lacks; before each one, the segments and
nodes its tree needs that the target lacks, found by walking only subtrees whose digests the target lacks.
Every object is checked against its digest as it is read, and commits are created create-only after
everything they name.
"""

from pyrostore.mirror.diff import PartitionDiff, diff_archives
from pyrostore.mirror.metrics import MirrorMetrics
from pyrostore.mirror.partition import PartitionState, mirror_partition
from pyrostore.mirror.runner import Mirror, MirrorOptions

__all__ = [
    "Mirror",
    "MirrorMetrics",
    "MirrorOptions",
    "PartitionDiff",
    "PartitionState",
    "diff_archives",
    "mirror_partition",
]
