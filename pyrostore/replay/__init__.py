"""Replay: send a range of an archived topic into a Kafka topic, resumably, optionally exactly once.

Stable API (the operator reports ReplayJob progress with it): :class:`ReplayOptions`, :func:`plan_replay`
(the dry run's figures) and :func:`replay_progress` (reads the checkpoints; no side effects).
"""

from pyrostore.replay.options import ReplayOptions
from pyrostore.replay.plan import PartitionRange, ReplayPlan, plan_replay
from pyrostore.replay.progress import ReplayProgress
from pyrostore.replay.runner import Replayer, replay_progress

__all__ = [
    "PartitionRange",
    "ReplayOptions",
    "ReplayPlan",
    "ReplayProgress",
    "Replayer",
    "plan_replay",
    "replay_progress",
]
