"""Every error Pyrostore raises on purpose, in one hierarchy under :class:`PyrostoreError`.

One name per condition. Messages say what was being done and to which object, so that one line is enough to
act on. Two branches decide how the command line reports them: a :class:`UsageError` is bad input (exit
code 2), anything else a failure at run time (exit code 1).
"""

from __future__ import annotations


class PyrostoreError(Exception):
    """Base of every error Pyrostore raises on purpose."""


# --- bad input (exit code 2) -------------------------------------------------------------------------------


class UsageError(PyrostoreError, ValueError):
    """Input a user gave is malformed or contradicts itself: a setting, an option, a name, a URL."""


class InvalidSetting(UsageError):
    """A setting's value cannot be parsed (a time, duration, size, flag, key=value pair or properties file)."""


class InvalidTopicName(UsageError):
    """A name is not a legal Kafka topic name."""


class InvalidStoreURL(UsageError):
    """A store URL is malformed, names an unknown scheme, or comes with an unknown or bad option."""


class InvalidKafkaProperties(UsageError):
    """A Kafka client property is malformed, or one that Pyrostore's correctness depends on is overridden."""


class ConsumerConfigError(UsageError):
    """A ``pyrostore.Consumer`` setting is missing or invalid."""


class InvalidReplayOptions(UsageError):
    """Replay options that contradict each other or name something impossible (a bad bound, rate or mode)."""


# --- object stores -----------------------------------------------------------------------------------------


class StoreError(PyrostoreError):
    """An object store operation failed; the message names the operation and the object."""


class StoreUnreachable(StoreError):
    """The store's endpoint did not answer within the store's retry deadline."""


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


# --- topics ------------------------------------------------------------------------------------------------


class TopicNotFound(PyrostoreError):
    """A topic (or partition) does not exist where it was looked for: in an archive, or in a Kafka cluster."""


class TopicIdentityMismatch(PyrostoreError):
    """A topic's archive belongs to another incarnation of the topic (deleted and recreated) or cluster."""


# --- Kafka -------------------------------------------------------------------------------------------------


class KafkaUnavailable(PyrostoreError):
    """Kafka could not be reached, or refused a request."""


class KafkaAccessDenied(KafkaUnavailable):
    """Kafka refused the client: wrong credentials, an untrusted or refused certificate, or no ACL allowing an
    operation. Waiting will not fix it, so nothing retries it."""


# --- writers -----------------------------------------------------------------------------------------------


class FencedError(PyrostoreError):
    """A newer writer has claimed the partition; this writer must stop writing it."""


class CommitConflict(PyrostoreError):
    """Another writer committed first and its commit does not line up with this writer's segments."""


# --- reading -----------------------------------------------------------------------------------------------


class OffsetOutOfRange(PyrostoreError):
    """The requested offsets are held neither by the archive nor by Kafka (a hole), or lie past the end."""


class ReadOnlyArchive(UsageError):
    """A write was attempted through an archive opened as of a past time or commit, which only reads."""


# --- archiving ---------------------------------------------------------------------------------------------


class HistoryLost(PyrostoreError):
    """Kafka deleted records (retention) before they could be archived."""


# --- replay ------------------------------------------------------------------------------------------------


class EmptyRange(PyrostoreError):
    """The requested range holds no archived record: there is nothing to replay."""


class TargetTooSmall(PyrostoreError):
    """Preserve mode needs a target partition for every source partition, and the target has too few."""


# --- serve (the Kafka protocol) ------------------------------------------------------------------------------


class ProtocolError(PyrostoreError):
    """A client sent bytes that are no request this server answers: a malformed frame, a length prefix above the
    maximum, an unknown API key or version. The server closes that connection only."""


class ListenFailed(PyrostoreError):
    """The server could not listen on the address it was given (in use, not local, not permitted)."""


# --- operator ----------------------------------------------------------------------------------------------


class SecretUnavailable(PyrostoreError):
    """A Secret a resource refers to does not exist or cannot be read."""


# --- mirror ------------------------------------------------------------------------------------------------


class ArchivesDiverged(PyrostoreError):
    """A mirror's target holds a commit its source does not (another writer, a diverged copy): copying on would
    splice two histories, so the mirror refuses."""
