"""The values a classic consumer group is made of and answers with, free of any wire format.

Handlers turn requests into these and these into kio responses; the state machine (:mod:`.group`) only sees
these. Times are seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from kio.schema.errors import ErrorCode


class GroupState(StrEnum):
    """Kafka's classic group states, spelled as DescribeGroups and ListGroups spell them."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(frozen=True)
class GroupSettings:
    """The coordinator's settings, as Kafka's broker settings of the same names (in seconds)."""

    initial_rebalance_delay: float = 3.0  # group.initial.rebalance.delay.ms
    min_session_timeout: float = 6.0  # group.min.session.timeout.ms
    max_session_timeout: float = 1800.0  # group.max.session.timeout.ms
    new_member_join_timeout: float = 300.0  # a new member's JoinGroup is given up after this


@dataclass(frozen=True)
class JoinRequest:
    """One JoinGroup request, whatever its version."""

    member_id: str  # "" for a member joining for the first time
    instance_id: str | None  # group.instance.id: a static member
    client_id: str
    client_host: str
    session_timeout: float
    rebalance_timeout: float
    protocol_type: str
    protocols: tuple[tuple[str, bytes], ...]  # (name, metadata) in the member's order of preference
    requires_known_member_id: bool = True  # JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED
    supports_skip_assignment: bool = True  # JoinGroup v9+


@dataclass(frozen=True)
class SyncRequest:
    """One SyncGroup request: the leader's carries every member's assignment."""

    member_id: str
    instance_id: str | None
    generation: int
    protocol_type: str | None = None  # v5+: what the member joined with
    protocol_name: str | None = None
    assignments: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class JoinedMember:
    """A member as the leader sees it in its JoinGroup answer: its metadata for the chosen protocol."""

    member_id: str
    instance_id: str | None
    metadata: bytes


@dataclass(frozen=True)
class JoinResult:
    """A JoinGroup answer."""

    error: ErrorCode
    member_id: str
    generation: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    members: tuple[JoinedMember, ...] = ()  # for the leader only
    skip_assignment: bool = False


@dataclass(frozen=True)
class SyncResult:
    """A SyncGroup answer: the member's assignment, as the leader sent it."""

    error: ErrorCode
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass(frozen=True)
class MemberSummary:
    """A member as DescribeGroups shows it (metadata and assignment only while the group is stable)."""

    member_id: str
    instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True)
class GroupSummary:
    """A group as DescribeGroups and ListGroups show it."""

    group_id: str
    state: GroupState
    protocol_type: str
    protocol_name: str
    members: tuple[MemberSummary, ...] = ()


@dataclass
class Member:
    """A member of a group, with the answers it is waiting for (JoinGroup, SyncGroup)."""

    member_id: str
    instance_id: str | None
    client_id: str
    client_host: str
    session_timeout: float
    rebalance_timeout: float
    protocol_type: str
    protocols: tuple[tuple[str, bytes], ...]
    assignment: bytes = b""
    is_new: bool = False
    join_reply: Callable[[JoinResult], None] | None = field(default=None, repr=False)
    sync_reply: Callable[[SyncResult], None] | None = field(default=None, repr=False)

    @property
    def awaiting_join(self) -> bool:
        """Whether a JoinGroup of this member is waiting for the rebalance."""
        return self.join_reply is not None

    @property
    def awaiting_sync(self) -> bool:
        """Whether a SyncGroup of this member is waiting for the leader's assignment."""
        return self.sync_reply is not None

    def protocol_names(self) -> tuple[str, ...]:
        """The protocols the member supports, in its order of preference."""
        return tuple(name for name, _ in self.protocols)

    def metadata(self, protocol: str | None) -> bytes:
        """The member's metadata for ``protocol`` (empty when it has none)."""
        return next((data for name, data in self.protocols if name == protocol), b"")

    def answer_join(self, result: JoinResult) -> bool:
        """Send the waiting JoinGroup its answer; False when none was waiting."""
        reply, self.join_reply = self.join_reply, None
        if reply is not None:
            reply(result)
        return reply is not None

    def answer_sync(self, result: SyncResult) -> bool:
        """Send the waiting SyncGroup its answer; False when none was waiting."""
        reply, self.sync_reply = self.sync_reply, None
        if reply is not None:
            reply(result)
        return reply is not None
