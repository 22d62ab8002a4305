"""One classic consumer group as Kafka's coordinator runs it: a state machine over its members.

States are Kafka's: Empty, PreparingRebalance (members rejoin), CompletingRebalance (the leader computes
assignments), Stable, and Dead (the coordinator dropped the group; requests holding it are told to look for the
coordinator again). Transitions are methods; answers to JoinGroup and SyncGroup requests that must wait for the
rebalance go to reply callbacks, and deadlines (session expiry, rebalance timeout, the initial rebalance delay,
members that never send SyncGroup) go to a :class:`~.timers.Timers`. Nothing here reads a clock or does I/O, so
tests drive a group by hand. The coordinator never reads assignments: the leader's bytes are relayed unchanged.

The rules follow Kafka's classic group coordinator (``GroupMetadataManager``/``ClassicGroup``, Kafka 4): a new
dynamic member first gets MEMBER_ID_REQUIRED (JoinGroup v4+), a first rebalance waits
``initial_rebalance_delay`` for more members (again while new ones arrive, up to the rebalance timeout), the
protocol is chosen by vote among those every member supports, a static member (group.instance.id) rejoining
with unchanged metadata keeps its assignment without a rebalance.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable

from kio.schema.errors import ErrorCode

from pyrostore.serve.groups.model import (
    GroupSettings,
    GroupState,
    GroupSummary,
    JoinedMember,
    JoinRequest,
    JoinResult,
    Member,
    MemberSummary,
    SyncRequest,
    SyncResult,
)
from pyrostore.serve.groups.timers import Timers

JoinReply = Callable[[JoinResult], None]
SyncReply = Callable[[SyncResult], None]

_FROM = {  # the states a state can be entered from
    GroupState.PREPARING_REBALANCE: {GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY},
    GroupState.COMPLETING_REBALANCE: {GroupState.PREPARING_REBALANCE},
    GroupState.STABLE: {GroupState.COMPLETING_REBALANCE},
    GroupState.EMPTY: {GroupState.PREPARING_REBALANCE},
    GroupState.DEAD: set(GroupState),
}
_JOIN_TIMER = "join"
_SYNC_TIMER = "sync"


def new_member_id(client_id: str, instance_id: str | None) -> str:
    """A member id as Kafka makes them: the instance id (static) or client id, a dash and a random UUID."""
    return f"{instance_id if instance_id is not None else client_id}-{uuid.uuid4()}"


class Group:
    """A classic group's membership, generation and assignments."""

    def __init__(
        self,
        group_id: str,
        settings: GroupSettings,
        timers: Timers,
        make_member_id: Callable[[str, str | None], str] = new_member_id,
    ) -> None:
        self.group_id = group_id
        self.settings = settings
        self.timers = timers
        self.state = GroupState.EMPTY
        self.previous_state = GroupState.EMPTY
        self.generation = 0
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.leader: str | None = None
        self.members: dict[str, Member] = {}
        self.static: dict[str, str] = {}  # group.instance.id: member id
        self.pending: set[str] = set()  # ids handed out with MEMBER_ID_REQUIRED, not joined yet
        self.pending_sync: set[str] = set()  # members of this generation that have not sent SyncGroup
        self.new_member_added = False  # during the first rebalance: extend its delay
        self._make_member_id = make_member_id

    # Queries.

    @property
    def idle(self) -> bool:
        """Empty with nobody on the way in: the coordinator may forget the group."""
        return self.state is GroupState.EMPTY and not self.members and not self.pending

    def all_joined(self) -> bool:
        """Whether every member is waiting in JoinGroup and no new member is on its way."""
        return all(m.awaiting_join for m in self.members.values()) and not self.pending

    def rebalance_timeout(self) -> float:
        """The longest rebalance timeout of the members."""
        return max((m.rebalance_timeout for m in self.members.values()), default=0.0)

    def validate_member(self, member_id: str, instance_id: str | None) -> ErrorCode:
        """UNKNOWN_MEMBER_ID for a stranger, FENCED_INSTANCE_ID for a static member whose id was replaced."""
        if instance_id is not None:
            known = self.static.get(instance_id)
            if known is None:
                return ErrorCode.unknown_member_id
            if known != member_id:
                return ErrorCode.fenced_instance_id
        return ErrorCode.none if member_id in self.members else ErrorCode.unknown_member_id

    def summary(self) -> GroupSummary:
        """The group as DescribeGroups shows it: member metadata and assignments only when stable."""
        stable = self.state is GroupState.STABLE
        members = tuple(
            MemberSummary(
                m.member_id,
                m.instance_id,
                m.client_id,
                m.client_host,
                m.metadata(self.protocol_name) if stable else b"",
                m.assignment if stable else b"",
            )
            for m in self.members.values()
        )
        name = (self.protocol_name or "") if stable else ""
        return GroupSummary(self.group_id, self.state, self.protocol_type or "", name, members)

    # Requests.

    def join(self, request: JoinRequest, reply: JoinReply) -> None:
        """A JoinGroup: answered now (errors, MEMBER_ID_REQUIRED, nothing changed) or when the rebalance
        completes."""
        names = tuple(name for name, _ in request.protocols)
        if self.state is GroupState.DEAD:
            reply(JoinResult(ErrorCode.coordinator_not_available, request.member_id))
        elif not self._supports(request.protocol_type, names):
            reply(JoinResult(ErrorCode.inconsistent_group_protocol, request.member_id))
        elif not request.member_id:
            self._join_new(request, reply)
        elif request.member_id in self.pending:
            self._add_member(request, request.member_id, reply)
        else:
            self._join_known(request, reply)

    def sync(self, request: SyncRequest, reply: SyncReply) -> None:
        """A SyncGroup: answered when the leader's (with every member's assignment) arrives."""
        member_id = request.member_id
        error = self._sync_error(request)
        if error is not ErrorCode.none:
            reply(SyncResult(error))
        elif self.state is GroupState.PREPARING_REBALANCE:
            reply(SyncResult(ErrorCode.rebalance_in_progress))
        elif self.state is GroupState.COMPLETING_REBALANCE:
            member = self.members[member_id]
            member.answer_sync(SyncResult(ErrorCode.rebalance_in_progress))  # an earlier one, superseded
            member.sync_reply = reply
            self.pending_sync.discard(member_id)
            if member_id == self.leader:
                for m in self.members.values():
                    m.assignment = request.assignments.get(m.member_id, b"")
                self._propagate(ErrorCode.none)
                self._transition(GroupState.STABLE)
        else:  # stable: the assignment is known
            self.pending_sync.discard(member_id)
            reply(
                SyncResult(ErrorCode.none, self.protocol_type, self.protocol_name, self.members[member_id].assignment)
            )

    def heartbeat(self, member_id: str, instance_id: str | None, generation: int) -> ErrorCode:
        """A Heartbeat: keeps the member's session; REBALANCE_IN_PROGRESS tells it to rejoin."""
        error = self._generation_error(member_id, instance_id, generation)
        if error is not ErrorCode.none:
            return error
        if self.state is GroupState.EMPTY:
            return ErrorCode.unknown_member_id
        self._expect_heartbeat(self.members[member_id])
        if self.state is GroupState.PREPARING_REBALANCE:
            return ErrorCode.rebalance_in_progress
        return ErrorCode.none

    def leave(self, leaving: Iterable[tuple[str, str | None]]) -> tuple[ErrorCode, list[ErrorCode]]:
        """A LeaveGroup of (member id, instance id) pairs (an empty member id names a static member by its
        instance id): the group's error and one per member."""
        if self.state is GroupState.DEAD:
            return ErrorCode.coordinator_not_available, []
        errors = []
        for member_id, instance_id in leaving:
            if not member_id:
                if instance_id is not None and instance_id in self.static:
                    self._remove(self.static[instance_id])
                    errors.append(ErrorCode.none)
                else:
                    errors.append(ErrorCode.unknown_member_id)
            elif member_id in self.pending:
                self._remove(member_id)
                errors.append(ErrorCode.none)
            else:
                error = self.validate_member(member_id, instance_id)
                if error is ErrorCode.none:
                    self._remove(member_id)
                errors.append(error)
        if ErrorCode.none in errors:
            if self.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
                self._rebalance_or_complete_join()
            elif self.state is GroupState.PREPARING_REBALANCE:
                self._maybe_complete_join()
        return ErrorCode.none, errors

    def validate_commit(self, member_id: str, instance_id: str | None, generation: int) -> ErrorCode:
        """Whether an OffsetCommit may commit: a member of this generation, or anyone (generation -1) while the
        group is empty. A member's commit keeps its session, as a heartbeat does."""
        if self.state is GroupState.DEAD:
            return ErrorCode.coordinator_not_available
        if generation < 0 and self.state is GroupState.EMPTY:
            return ErrorCode.none
        if generation >= 0 or member_id or instance_id is not None:
            error = self.validate_member(member_id, instance_id)
            if error is not ErrorCode.none:
                return error
            if generation != self.generation:
                return ErrorCode.illegal_generation
        elif self.state is not GroupState.EMPTY:
            return ErrorCode.unknown_member_id
        if self.state is GroupState.COMPLETING_REBALANCE:
            return ErrorCode.rebalance_in_progress
        self._expect_heartbeat(self.members[member_id])
        return ErrorCode.none

    def dissolve(self) -> None:
        """Dead: the coordinator dropped the group (or stops). Waiting requests are told to look for the
        coordinator again; timers stop."""
        self._transition(GroupState.DEAD)
        self.timers.close()
        for member in self.members.values():
            member.answer_join(JoinResult(ErrorCode.coordinator_not_available, member.member_id))
            member.answer_sync(SyncResult(ErrorCode.coordinator_not_available))

    # Joining.

    def _supports(self, protocol_type: str, names: tuple[str, ...]) -> bool:
        if self.state is GroupState.EMPTY:
            return bool(protocol_type) and bool(names)
        return protocol_type == self.protocol_type and any(
            all(name in m.protocol_names() for m in self.members.values()) for name in names
        )

    def _join_new(self, request: JoinRequest, reply: JoinReply) -> None:
        member_id = self._make_member_id(request.client_id, request.instance_id)
        if request.instance_id is not None:
            known = self.static.get(request.instance_id)
            if known is not None:
                self._replace_static(request, known, member_id, reply)
            else:
                self._add_member(request, member_id, reply)
        elif request.requires_known_member_id:
            self.pending.add(member_id)
            self.timers.schedule(("expiry", member_id), request.session_timeout, lambda: self._expire(member_id))
            reply(JoinResult(ErrorCode.member_id_required, member_id))
        else:
            self._add_member(request, member_id, reply)

    def _join_known(self, request: JoinRequest, reply: JoinReply) -> None:
        error = self.validate_member(request.member_id, request.instance_id)
        if error is not ErrorCode.none:
            reply(JoinResult(error, request.member_id))
            return
        member = self.members[request.member_id]
        same = member.protocols == request.protocols
        if self.state is GroupState.PREPARING_REBALANCE:
            self._update_member(member, request, reply)
        elif self.state is GroupState.COMPLETING_REBALANCE and same:
            reply(self._join_result(member))  # it missed the answer: the same again
        elif self.state is GroupState.STABLE and same and member.member_id != self.leader:
            reply(self._join_result(member))  # nothing changed for a follower
        elif self.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
            self._update_member(member, request, reply)  # new metadata, or the leader asks for a rebalance
        else:
            reply(JoinResult(ErrorCode.unknown_member_id, request.member_id))

    def _add_member(self, request: JoinRequest, member_id: str, reply: JoinReply) -> None:
        member = Member(
            member_id,
            request.instance_id,
            request.client_id,
            request.client_host,
            request.session_timeout,
            request.rebalance_timeout,
            request.protocol_type,
            request.protocols,
            is_new=True,
            join_reply=reply,
        )
        if self.state is GroupState.PREPARING_REBALANCE and self.previous_state is GroupState.EMPTY:
            self.new_member_added = True
        if request.instance_id is not None:
            self.static[request.instance_id] = member_id
        if not self.members:
            self.protocol_type = request.protocol_type
        if self.leader is None:
            self.leader = member_id
        self.members[member_id] = member
        self.pending.discard(member_id)
        # A new member cannot heartbeat while it waits in JoinGroup: give up on it after a long while only.
        self._expect_heartbeat(member, self.settings.new_member_join_timeout)
        self._rebalance_or_complete_join()

    def _update_member(self, member: Member, request: JoinRequest, reply: JoinReply) -> None:
        member.protocols = request.protocols
        member.session_timeout = request.session_timeout
        member.rebalance_timeout = request.rebalance_timeout
        member.answer_join(JoinResult(ErrorCode.rebalance_in_progress, member.member_id))  # superseded
        member.join_reply = reply
        self._rebalance_or_complete_join()

    def _replace_static(self, request: JoinRequest, old_id: str, new_id: str, reply: JoinReply) -> None:
        """A static member rejoins with a new member id: the old id is fenced, the assignment kept."""
        assert request.instance_id is not None
        leader_before = self.leader
        old = self.members.pop(old_id)
        old.answer_join(JoinResult(ErrorCode.fenced_instance_id, old_id))
        old.answer_sync(SyncResult(ErrorCode.fenced_instance_id))
        self.timers.cancel(("expiry", old_id))
        self.pending_sync.discard(old_id)
        member = Member(
            new_id,
            old.instance_id,
            old.client_id,
            old.client_host,
            request.session_timeout,
            request.rebalance_timeout,
            old.protocol_type,
            request.protocols,
            assignment=old.assignment,
            join_reply=reply,
        )
        self.members[new_id] = member
        self.static[request.instance_id] = new_id
        if self.leader == old_id:
            self.leader = new_id
        self._expect_heartbeat(member)
        if self.state is GroupState.STABLE:
            if self.protocol_name == self._select_protocol():
                # Nothing changes for the others: no rebalance. A leader that can skip running the assignor is
                # told so; an older one is told the old leader, so it just fetches its assignment as a follower.
                if request.supports_skip_assignment:
                    member.answer_join(self._join_result(member, skip_assignment=new_id == self.leader))
                else:
                    member.answer_join(self._join_result(member, leader=leader_before or "", members=False))
            else:
                self._rebalance_or_complete_join()
        elif self.state is GroupState.COMPLETING_REBALANCE:
            self._prepare_rebalance()  # the leader may have been given the old id: assign again
        else:
            self._maybe_complete_join()

    def _join_result(
        self, member: Member, skip_assignment: bool = False, leader: str | None = None, members: bool = True
    ) -> JoinResult:
        leading = member.member_id == self.leader and members
        listed = tuple(
            JoinedMember(m.member_id, m.instance_id, m.metadata(self.protocol_name)) for m in self.members.values()
        )
        return JoinResult(
            ErrorCode.none,
            member.member_id,
            self.generation,
            self.protocol_type,
            self.protocol_name,
            (self.leader or "") if leader is None else leader,
            listed if leading else (),
            skip_assignment,
        )

    # Rebalancing.

    def _rebalance_or_complete_join(self) -> None:
        if self.state in _FROM[GroupState.PREPARING_REBALANCE]:
            self._prepare_rebalance()
        else:
            self._maybe_complete_join()

    def _maybe_complete_join(self) -> None:
        """Complete the join phase once everyone rejoined, except in a first rebalance (its delay decides)."""
        if (
            self.state is GroupState.PREPARING_REBALANCE
            and self.previous_state is not GroupState.EMPTY
            and self.all_joined()
        ):
            self._complete_join()

    def _prepare_rebalance(self) -> None:
        if self.state is GroupState.COMPLETING_REBALANCE:
            for member in self.members.values():
                member.assignment = b""
            self._propagate(ErrorCode.rebalance_in_progress)
        self.pending_sync.clear()
        self.timers.cancel(_SYNC_TIMER)
        initial = self.state is GroupState.EMPTY
        if initial:
            delay = self.settings.initial_rebalance_delay
            remaining = max(self.rebalance_timeout() - delay, 0.0)
            self.timers.schedule(_JOIN_TIMER, delay, lambda: self._complete_initial_join(delay, remaining))
        self._transition(GroupState.PREPARING_REBALANCE)
        if initial:
            return
        if self.all_joined():
            self._complete_join()
        else:
            self.timers.schedule(_JOIN_TIMER, self.rebalance_timeout(), self._complete_join)

    def _complete_initial_join(self, delay: float, remaining: float) -> None:
        """The first rebalance's delay ran out: wait once more if a member arrived meanwhile and time is left."""
        if self.new_member_added and remaining > 0:
            self.new_member_added = False
            later = min(self.settings.initial_rebalance_delay, remaining)
            left = max(remaining - delay, 0.0)
            self.timers.schedule(_JOIN_TIMER, later, lambda: self._complete_initial_join(later, left))
        else:
            self._complete_join()

    def _complete_join(self) -> None:
        """The join phase ends: members that did not rejoin leave (static ones stay until their session ends),
        the next generation starts, every waiting JoinGroup is answered (the leader gets the members)."""
        self.timers.cancel(_JOIN_TIMER)
        if self.state is not GroupState.PREPARING_REBALANCE:
            return
        for member in list(self.members.values()):
            if not member.awaiting_join and member.instance_id is None:
                self._remove(member.member_id)
        if not self._elect_joined_leader() and self.members:
            self.timers.schedule(_JOIN_TIMER, self.rebalance_timeout(), self._complete_join)
            return
        self.generation += 1
        self.pending_sync.clear()
        if not self.members:
            self.protocol_name = None
            self._transition(GroupState.EMPTY)
            return
        self.protocol_name = self._select_protocol()
        self._transition(GroupState.COMPLETING_REBALANCE)
        for member in self.members.values():
            member.answer_join(self._join_result(member))
            self._expect_heartbeat(member)
            member.is_new = False
            self.pending_sync.add(member.member_id)
        generation = self.generation
        self.timers.schedule(_SYNC_TIMER, self.rebalance_timeout(), lambda: self._expire_pending_sync(generation))

    def _elect_joined_leader(self) -> bool:
        """Keep a leader that rejoined, else pick a member that did; False when none did."""
        if self.leader is None:
            return False
        if self.members[self.leader].awaiting_join:
            return True
        joined = next((m.member_id for m in self.members.values() if m.awaiting_join), None)
        if joined is not None:
            self.leader = joined
        return joined is not None

    def _select_protocol(self) -> str:
        """Among the protocols every member supports, the one most members prefer."""
        candidates = {
            name
            for name in self.members[next(iter(self.members))].protocol_names()
            if all(name in m.protocol_names() for m in self.members.values())
        }
        votes = Counter(next(name for name in m.protocol_names() if name in candidates) for m in self.members.values())
        return max(votes, key=lambda name: votes[name])

    def _propagate(self, error: ErrorCode) -> None:
        """Answer every waiting SyncGroup with its member's assignment (or ``error``)."""
        ok = error is ErrorCode.none
        protocol_type, protocol_name = (self.protocol_type, self.protocol_name) if ok else (None, None)
        for member in self.members.values():
            if member.answer_sync(SyncResult(error, protocol_type, protocol_name, member.assignment)):
                self._expect_heartbeat(member)

    def _expire_pending_sync(self, generation: int) -> None:
        """The rebalance timeout passed since the join phase: members that never sent SyncGroup are removed."""
        if generation != self.generation or not self.pending_sync:
            return
        if self.state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
            for member_id in list(self.pending_sync):
                self._remove(member_id)
            self._prepare_rebalance()

    # Sessions and removal.

    def _expect_heartbeat(self, member: Member, timeout: float | None = None) -> None:
        member_id = member.member_id
        delay = member.session_timeout if timeout is None else timeout
        self.timers.schedule(("expiry", member_id), delay, lambda: self._expire(member_id))

    def _expire(self, member_id: str) -> None:
        """A session ended without a heartbeat (a pending member never came back; a new one never finished
        joining). Members waiting in a rebalance are kept."""
        if self.state is GroupState.DEAD:
            return
        if member_id in self.pending:
            self.pending.discard(member_id)
            if self.state is GroupState.PREPARING_REBALANCE and self.all_joined():
                self._complete_join()
            return
        member = self.members.get(member_id)
        if member is None or not (member.is_new or not (member.awaiting_join or member.awaiting_sync)):
            return
        self._remove(member_id)
        if self.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._rebalance_or_complete_join()
        elif self.state is GroupState.PREPARING_REBALANCE and self.all_joined():
            self._complete_join()

    def _remove(self, member_id: str) -> None:
        """Take a member (or pending id) out; its waiting requests get UNKNOWN_MEMBER_ID."""
        member = self.members.pop(member_id, None)
        if member is not None:
            if member.instance_id is not None and self.static.get(member.instance_id) == member_id:
                del self.static[member.instance_id]
            member.answer_join(JoinResult(ErrorCode.unknown_member_id, ""))
            member.answer_sync(SyncResult(ErrorCode.unknown_member_id))
        if self.leader == member_id:
            self.leader = next(iter(self.members), None)
        self.pending.discard(member_id)
        self.pending_sync.discard(member_id)
        self.timers.cancel(("expiry", member_id))

    def _sync_error(self, request: SyncRequest) -> ErrorCode:
        if self.state is GroupState.EMPTY:
            return ErrorCode.unknown_member_id
        error = self._generation_error(request.member_id, request.instance_id, request.generation)
        if error is not ErrorCode.none:
            return error
        if _differs(request.protocol_type, self.protocol_type) or _differs(request.protocol_name, self.protocol_name):
            return ErrorCode.inconsistent_group_protocol
        return ErrorCode.none

    def _generation_error(self, member_id: str, instance_id: str | None, generation: int) -> ErrorCode:
        """Whether a member of this generation speaks (Heartbeat, SyncGroup)."""
        if self.state is GroupState.DEAD:
            return ErrorCode.coordinator_not_available
        error = self.validate_member(member_id, instance_id)
        if error is ErrorCode.none and generation != self.generation:
            return ErrorCode.illegal_generation
        return error

    def _transition(self, state: GroupState) -> None:
        if self.state not in _FROM[state]:
            raise RuntimeError(f"group {self.group_id!r}: no transition from {self.state} to {state}")
        self.previous_state, self.state = self.state, state


def _differs(asked: str | None, known: str | None) -> bool:
    """SyncGroup v5 names the protocol type and name it joined with; either side may be absent."""
    return asked is not None and known is not None and asked != known
