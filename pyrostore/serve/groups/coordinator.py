"""The group coordinator: every classic group of this server, and their committed offsets.

Requests find their group here (JoinGroup creates it); the checks Kafka makes before a group is looked at
(group id, session timeout bounds, a group that does not exist) are made here too. A group that becomes empty
with nobody on the way in is forgotten (its offsets stay in the store), as Kafka drops an empty group without
offsets; requests still holding it then find it Dead and look for the coordinator again. JoinGroup and
SyncGroup wait here for the rebalance to answer them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from kio.schema.errors import ErrorCode

from pyrostore.errors import AccessDenied, StoreError
from pyrostore.serve.groups.group import Group
from pyrostore.serve.groups.model import (
    GroupSettings,
    GroupState,
    GroupSummary,
    JoinRequest,
    JoinResult,
    SyncRequest,
    SyncResult,
)
from pyrostore.serve.groups.offsets import Committed, GroupOffsets, Partition
from pyrostore.serve.groups.timers import LoopTimers

log = logging.getLogger("pyrostore.serve")


class Coordinator:
    """The classic groups coordinated by this server (it coordinates every group) and their offsets."""

    def __init__(self, settings: GroupSettings, offsets: GroupOffsets) -> None:
        self.settings = settings
        self.offsets = offsets
        self.groups: dict[str, Group] = {}
        self._refused: set[str] = set()  # groups whose commits the store refused (logged once)

    def close(self) -> None:
        """Stop every group's timers; waiting JoinGroup and SyncGroup requests are told to look again."""
        for group in self.groups.values():
            group.dissolve()
        self.groups.clear()

    async def join(self, group_id: str, request: JoinRequest) -> JoinResult:
        """A JoinGroup, answered when the group's rebalance lets it be."""
        if not group_id:
            return JoinResult(ErrorCode.invalid_group_id, request.member_id)
        low, high = self.settings.min_session_timeout, self.settings.max_session_timeout
        if not low <= request.session_timeout <= high:
            return JoinResult(ErrorCode.invalid_session_timeout, request.member_id)
        group = self.groups.get(group_id)
        if group is None:
            if request.member_id:
                return JoinResult(ErrorCode.unknown_member_id, request.member_id)
            group = self.groups[group_id] = Group(group_id, self.settings, LoopTimers(lambda: self._tidy(group_id)))
        return await self._answer(group, lambda reply: group.join(request, reply))

    async def sync(self, group_id: str, request: SyncRequest) -> SyncResult:
        """A SyncGroup, answered once the leader's arrived."""
        if not group_id:
            return SyncResult(ErrorCode.invalid_group_id)
        group = self.groups.get(group_id)
        if group is None:
            return SyncResult(ErrorCode.unknown_member_id)
        return await self._answer(group, lambda reply: group.sync(request, reply))

    def heartbeat(self, group_id: str, member_id: str, instance_id: str | None, generation: int) -> ErrorCode:
        """A Heartbeat's answer."""
        if not group_id:
            return ErrorCode.invalid_group_id
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.unknown_member_id
        return group.heartbeat(member_id, instance_id, generation)

    def leave(self, group_id: str, members: list[tuple[str, str | None]]) -> tuple[ErrorCode, list[ErrorCode]]:
        """A LeaveGroup's answer: the group's error and one per leaving member."""
        if not group_id:
            return ErrorCode.invalid_group_id, []
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.none, [ErrorCode.unknown_member_id] * len(members)
        try:
            return group.leave(members)
        finally:
            self._tidy(group_id)

    async def commit(
        self,
        group_id: str,
        member: tuple[str, str | None, int],
        offsets: Mapping[Partition, Committed],
        version: int,
    ) -> ErrorCode:
        """An OffsetCommit of ``member`` (member id, instance id, generation): the error for all its partitions."""
        member_id, instance_id, generation = member
        group = self.groups.get(group_id)
        if group is None:
            if generation >= 0:  # a member of a group this server does not know (restarted, or forgot it)
                return ErrorCode.group_id_not_found if version >= 9 else ErrorCode.illegal_generation
        else:
            error = group.validate_commit(member_id, instance_id, generation)
            if error is not ErrorCode.none:
                return error
        if not offsets:
            return ErrorCode.none
        try:
            await self.offsets.commit(group_id, offsets)
        except StoreError as exc:
            return self.store_failure(group_id, "committing offsets", exc)
        return ErrorCode.none

    async def committed(self, group_id: str) -> Mapping[Partition, Committed]:
        """The group's committed offsets. Raises StoreError."""
        return await self.offsets.fetch(group_id)

    async def describe(self, group_id: str) -> GroupSummary | None:
        """A group as DescribeGroups shows it: one with offsets only is Empty; None for an unknown one. Raises
        StoreError."""
        group = self.groups.get(group_id)
        if group is not None:
            return group.summary()
        if await self.offsets.fetch(group_id):
            return GroupSummary(group_id, GroupState.EMPTY, "", "")
        return None

    async def listing(self) -> list[GroupSummary]:
        """Every group: those with members here, and those with committed offsets (Empty). Raises StoreError."""
        summaries = {group_id: group.summary() for group_id, group in self.groups.items()}
        for group_id in await self.offsets.groups():
            summaries.setdefault(group_id, GroupSummary(group_id, GroupState.EMPTY, "", ""))
        return [summaries[group_id] for group_id in sorted(summaries)]

    def store_failure(self, group_id: str, action: str, exc: StoreError) -> ErrorCode:
        """The error a client is given when the store fails it, logged in one line: a refusal (read-only
        credentials) is GROUP_AUTHORIZATION_FAILED, which clients report, logged once per group; anything else
        COORDINATOR_NOT_AVAILABLE, which clients retry."""
        if isinstance(exc, AccessDenied):
            if group_id not in self._refused:
                self._refused.add(group_id)
                log.warning("group %s: the store refused %s (read-only credentials?): %s", group_id, action, exc)
            return ErrorCode.group_authorization_failed
        log.warning("group %s: %s failed: %s", group_id, action, exc)
        return ErrorCode.coordinator_not_available

    async def _answer(self, group: Group, call: Callable[[Callable[[Any], None]], None]) -> Any:
        """Hand the group a reply callback, then wait for the answer."""
        future: asyncio.Future = asyncio.get_running_loop().create_future()

        def reply(result: Any) -> None:
            if not future.done():  # the client may have gone, its request cancelled
                future.set_result(result)

        call(reply)
        self._tidy(group.group_id)
        return await future

    def _tidy(self, group_id: str) -> None:
        group = self.groups.get(group_id)
        if group is not None and group.idle:
            del self.groups[group_id]
            group.dissolve()
