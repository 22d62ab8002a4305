"""Where each kind of object lives in a store: the one place that spells the archive's keys.

Every key starts with :data:`ROOT_PREFIX`, under the store URL's own prefix. Offsets and sequence numbers are
zero-padded to 20 digits so listings come back in numeric order.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote, unquote

from pyrostore.errors import FormatError, InvalidTopicName

ROOT_PREFIX = "pyrostore/v1/"
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_DIGEST = re.compile(r"[0-9a-f]{64}")


def check_topic(topic: str) -> str:
    """Return ``topic`` if it is a legal Kafka topic name; raise InvalidTopicName naming it otherwise."""
    if not isinstance(topic, str) or not _TOPIC_NAME.match(topic) or topic in (".", ".."):
        raise InvalidTopicName(f"{topic!r} is not a Kafka topic name (1-249 of A-Z a-z 0-9 . _ -)")
    return topic


def segment_key(topic: str, partition: int, first_offset: int, digest: str) -> str:
    """The key of a segment: Hive-style ``topic=``/``partition=`` folders, first offset, content digest.

    Raises ValueError for an illegal topic, a negative partition or offset, or a digest that is not
    lowercase hex SHA-256.
    """
    check_topic(topic)
    if partition < 0 or first_offset < 0:
        raise ValueError(f"partition {partition} and first offset {first_offset} must not be negative")
    if not _DIGEST.fullmatch(digest):
        raise ValueError(f"digest {digest!r} is not a lowercase hex SHA-256")
    return f"{ROOT_PREFIX}data/topic={topic}/partition={partition}/{first_offset:020d}-{digest}.parquet"


def segment_prefix(topic: str, partition: int | None = None) -> str:
    """The folder holding a topic's (or one partition's) segments."""
    folder = f"{ROOT_PREFIX}data/topic={topic}/"
    return folder if partition is None else f"{folder}partition={partition}/"


_SEGMENT_KEY = re.compile(
    re.escape(ROOT_PREFIX)
    + r"data/topic=([A-Za-z0-9._-]{1,249})/partition=(0|[1-9][0-9]*)/([0-9]{20})-([0-9a-f]{64})\.parquet"
)


def parse_segment_key(key: str) -> tuple[str, int, int, str]:
    """Split a segment key into (topic, partition, first offset, digest). Raises FormatError."""
    match = _SEGMENT_KEY.fullmatch(key)
    if not match or match[1] in (".", ".."):
        raise FormatError(
            f"{key!r} is not a segment key ({ROOT_PREFIX}data/topic=<t>/partition=<p>/<first>-<sha256>.parquet)"
        )
    return match[1], int(match[2]), int(match[3]), match[4]


def node_key(topic: str, digest: str) -> str:
    """The key of an index node (content-addressed, shared by the topic's partitions)."""
    return f"{ROOT_PREFIX}index/{topic}/{digest}"


def node_prefix(topic: str) -> str:
    """The folder holding a topic's index nodes."""
    return f"{ROOT_PREFIX}index/{topic}/"


def commit_key(topic: str, partition: int, seq: int) -> str:
    """The key of commit ``seq`` of a partition (written create-only)."""
    return f"{commit_prefix(topic, partition)}{seq:020d}.json"


def commit_prefix(topic: str, partition: int) -> str:
    """The folder holding a partition's commits."""
    return f"{log_prefix(topic)}{partition}/"


def log_prefix(topic: str) -> str:
    """The folder holding the commit logs of all of a topic's partitions."""
    return f"{ROOT_PREFIX}log/{topic}/"


def parse_commit_seq(key: str) -> int:
    """The sequence number in a commit key. Raises FormatError."""
    name = key.rsplit("/", 1)[-1]
    if not re.fullmatch(r"\d{20}\.json", name):
        raise FormatError(f"{key!r} is not a commit key")
    return int(name[:20])


def head_key(topic: str, partition: int) -> str:
    """The key of a partition's head hint: a copy of a recent commit, overwritten as commits land."""
    return f"{head_prefix(topic)}{partition}.json"


def head_prefix(topic: str | None = None) -> str:
    """The folder of a topic's head hints (one object per archived partition), or of every topic's."""
    return f"{ROOT_PREFIX}head/" if topic is None else f"{ROOT_PREFIX}head/{topic}/"


def topic_key(topic: str) -> str:
    """The key of a topic's descriptor (format, source cluster and topic ids), written once."""
    return f"{topics_prefix()}{topic}.json"


def topics_prefix() -> str:
    """The folder of topic descriptors: one object per archived topic."""
    return f"{ROOT_PREFIX}topics/"


_GROUP_FOLDER = "group="
_GROUP_PART_MAX = 200  # encoded group ids longer than this are shortened with a digest (file name limits)


def group_offsets_key(group: str) -> str:
    """The key of a consumer group's committed offsets (``pyrostore serve``), outside the archived data.

    Any string is a group id: it is percent-encoded (everything but ``A-Z a-z 0-9 _ -``), so ``/``, ``.`` and
    ``..`` stay inside one key part; an encoding longer than 200 characters is cut and ends in ``~`` and a
    SHA-256 of the id (the object itself names the group).
    """
    encoded = quote(group, safe="").replace(".", "%2E").replace("~", "%7E")
    if len(encoded) > _GROUP_PART_MAX:
        encoded = f"{encoded[:100]}~{hashlib.sha256(group.encode()).hexdigest()}"
    return f"{groups_prefix()}{_GROUP_FOLDER}{encoded}/offsets.json"


def groups_prefix() -> str:
    """The folder of consumer groups' committed offsets."""
    return f"{ROOT_PREFIX}groups/"


def parse_group_offsets_key(key: str) -> str | None:
    """The group id in a key from :func:`group_offsets_key`; None for a shortened one (read the object) or for
    any other key."""
    folder = key.removeprefix(groups_prefix()).removesuffix("/offsets.json")
    if folder == key or "/" in folder or not folder.startswith(_GROUP_FOLDER) or "~" in folder:
        return None
    return unquote(folder.removeprefix(_GROUP_FOLDER))
