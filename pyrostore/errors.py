"""Every error Pyrostore raises on purpose, in one hierarchy under :class:`PyrostoreError`.

Messages say what was being done and to which object, so that one line is enough to act on.
"""

from __future__ import annotations


class PyrostoreError(Exception):
    """Base of every error Pyrostore raises on purpose."""


# --- object stores -----------------------------------------------------------------------------------------


class StoreError(PyrostoreError):
    """An object store operation failed; the message names the operation and the object."""


class InvalidStoreURL(StoreError):
    """A store URL is malformed or names an unknown scheme."""


class BucketNotFound(StoreError):
    """The bucket (or local root folder) named by a store URL does not exist."""


class AccessDenied(StoreError):
    """The store refused the credentials, or they lack a permission the operation needs."""


class ObjectNotFound(StoreError):
    """The object does not exist."""


class ObjectExists(StoreError):
    """A create-only write found the object already there (someone else created it first)."""


# --- archive format and integrity --------------------------------------------------------------------------


class IntegrityError(PyrostoreError):
    """An object's bytes do not match the digest in its name, or its content breaks the format's rules."""


class FormatError(PyrostoreError):
    """An object is not in a format version this Pyrostore can read."""


class TopicNotFound(PyrostoreError):
    """The archive holds no topic (or no partition) of that name."""


class TopicIdentityMismatch(PyrostoreError):
    """A topic's archive belongs to another incarnation of the topic (deleted and recreated) or cluster."""


# --- writers -----------------------------------------------------------------------------------------------


class FencedError(PyrostoreError):
    """A newer writer has claimed the partition; this writer must stop writing it."""


class CommitConflict(PyrostoreError):
    """Another writer committed first and its commit does not line up with this writer's segments."""


# --- reading -----------------------------------------------------------------------------------------------


class OffsetOutOfRange(PyrostoreError):
    """The requested offsets are held neither by the archive nor by Kafka (a hole), or lie past the end."""


# --- archiving ---------------------------------------------------------------------------------------------


class HistoryLost(PyrostoreError):
    """Kafka deleted records (retention) before they could be archived."""
