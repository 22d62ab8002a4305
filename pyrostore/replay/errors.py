"""Errors a replay raises on purpose: each names what is wrong and with which topic, partition or option."""

from __future__ import annotations

from pyrostore.errors import PyrostoreError


class ReplayError(PyrostoreError):
    """Base of the replay's own errors."""


class InvalidReplayOptions(ReplayError):
    """Options that contradict each other or name something impossible (a bad bound, rate or mode)."""


class EmptyRange(ReplayError):
    """The requested range holds no archived record: there is nothing to replay."""


class TargetTopicMissing(ReplayError):
    """The target topic does not exist and ``--create-topic`` was not given."""


class TargetTooSmall(ReplayError):
    """Preserve mode needs a target partition for every source partition, and the target has too few."""
