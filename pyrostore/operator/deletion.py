"""``deletionPolicy: Delete``: remove one topic's archive, and nothing else, from its store."""

from __future__ import annotations

from pyrostore.layout import check_topic, head_prefix, log_prefix, node_prefix, segment_prefix, topic_key
from pyrostore.store import ObjectStore


def delete_topic_archive(store: ObjectStore, topic: str) -> int:
    """Delete every object of ``topic``'s archive under the store's own prefix; return how many.

    Head hints and commits go first, so an interrupted deletion leaves no commit pointing at missing
    segments; another topic's objects and anything outside the archive's layout are never listed.
    """
    check_topic(topic)
    deleted = 0
    for prefix in (head_prefix(topic), log_prefix(topic), node_prefix(topic), segment_prefix(topic)):
        for info in store.list(prefix):
            store.delete(info.key)
            deleted += 1
    descriptor = topic_key(topic)
    for info in store.list(descriptor):
        if info.key == descriptor:  # the listing is by prefix: skip other topics whose name starts alike
            store.delete(info.key)
            deleted += 1
    return deleted
