"""Group membership of the crossover consumer: the inner consumer's rebalances applied to the partitions, with
the application's callbacks called as confluent_kafka calls them.

confluent_kafka assigns (or unassigns) the partitions itself when a callback did not; so does this, through the
router, never through the public methods a subclass may override.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from confluent_kafka import TopicPartition

from pyrostore.consumer.inner import InnerConsumer
from pyrostore.consumer.router import Router

RebalanceCallback = Callable[[Any, list[TopicPartition]], None]


class Membership:
    """Subscriptions and rebalances; callbacks get ``owner``, the application's consumer object."""

    def __init__(self, owner: Any, router: Router, inner: InnerConsumer, cooperative: bool) -> None:
        self._owner = owner
        self._router = router
        self._inner = inner
        self._cooperative = cooperative
        self._callbacks: tuple[RebalanceCallback | None, ...] = (None, None, None)

    def subscribe(
        self,
        topics: list[str],
        on_assign: RebalanceCallback | None,
        on_revoke: RebalanceCallback | None,
        on_lost: RebalanceCallback | None,
    ) -> None:
        """Join the group for ``topics``."""
        self._callbacks = (on_assign, on_revoke, on_lost)
        self._inner.subscribe(topics, self._on_assign, self._on_revoke, self._on_lost)
        self._inner.eager_group = not self._cooperative

    def unsubscribe(self) -> None:
        """Leave the subscription."""
        self._inner.client.unsubscribe()
        self._inner.eager_group = False

    def _on_assign(self, _client: Any, partitions: list[TopicPartition]) -> None:
        self._inner.assigned_in_callback = False
        if self._callbacks[0] is not None:
            self._callbacks[0](self._owner, partitions)
        if not self._inner.assigned_in_callback:
            self._router.assign(partitions, incremental=self._cooperative)

    def _on_revoke(self, _client: Any, partitions: list[TopicPartition]) -> None:
        self._revoked(self._callbacks[1], partitions)

    def _on_lost(self, _client: Any, partitions: list[TopicPartition]) -> None:
        self._revoked(self._callbacks[2] or self._callbacks[1], partitions)

    def _revoked(self, callback: RebalanceCallback | None, partitions: list[TopicPartition]) -> None:
        self._router.flush_offsets()  # so that a commit in the callback includes what was handed out
        self._inner.assigned_in_callback = False
        if callback is not None:
            callback(self._owner, partitions)
        if not self._inner.assigned_in_callback:
            self._router.unassign(partitions if self._cooperative else None)
        self._router.forget([(tp.topic, tp.partition) for tp in partitions])
