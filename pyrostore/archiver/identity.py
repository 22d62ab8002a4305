"""The topic descriptor: which Kafka cluster and topic incarnation an archive belongs to.

``topics/<topic>.json`` is written once, create-only, when a topic is first archived. A topic deleted and
recreated under the same name gets a new topic id; appending it to the old archive would splice two
unrelated histories, so the archiver refuses.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from pyrostore.errors import FormatError, IntegrityError, ObjectExists, TopicIdentityMismatch
from pyrostore.index.commits import now
from pyrostore.layout import topic_key
from pyrostore.store import ObjectStore

DESCRIPTOR_FORMAT = 1


@dataclass(frozen=True)
class TopicIdentity:
    """A topic incarnation: its cluster's id and its own id."""

    topic: str
    cluster_id: str
    topic_id: str


def check_identity(archived: TopicIdentity, current: TopicIdentity) -> None:
    """Raise TopicIdentityMismatch unless ``current`` is the incarnation the archive holds."""
    if archived.topic_id != current.topic_id:
        raise TopicIdentityMismatch(
            f"topic {current.topic!r} has id {current.topic_id} but the archive holds topic id {archived.topic_id}: "
            "the topic was deleted and recreated; archive it under another store prefix"
        )
    if archived.cluster_id != current.cluster_id:
        raise TopicIdentityMismatch(
            f"topic {current.topic!r} is in cluster {current.cluster_id} but the archive holds cluster "
            f"{archived.cluster_id}'s; archive it under another store prefix"
        )


def ensure_descriptor(store: ObjectStore, identity: TopicIdentity) -> TopicIdentity:
    """Write the topic's descriptor if it has none, else check it. Raises TopicIdentityMismatch, StoreError."""
    key = topic_key(identity.topic)
    doc = {"format": DESCRIPTOR_FORMAT, **asdict(identity), "created_at": now()}
    try:
        store.create(key, json.dumps(doc, sort_keys=True, indent=2).encode())
        return identity
    except ObjectExists:
        pass
    archived = read_descriptor(store, identity.topic)
    check_identity(archived, identity)
    return archived


def read_descriptor(store: ObjectStore, topic: str) -> TopicIdentity:
    """The archived topic's identity. Raises ObjectNotFound, IntegrityError."""
    key = topic_key(topic)
    try:
        doc = json.loads(store.get(key))
        identity = TopicIdentity(topic=doc["topic"], cluster_id=doc["cluster_id"], topic_id=doc["topic_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"topic descriptor {store.url}/{key} is not valid ({exc})") from exc
    if doc.get("format") != DESCRIPTOR_FORMAT:
        raise FormatError(f"topic descriptor {store.url}/{key} has format {doc.get('format')}, not {DESCRIPTOR_FORMAT}")
    if identity.topic != topic:
        raise IntegrityError(f"topic descriptor {store.url}/{key} names topic {identity.topic!r}")
    return identity
