"""The group coordinator for Kafka's classic group protocol, as a pure state machine.

Sans-I/O, like h11: no sockets, no tasks, no clock. JoinGroup and SyncGroup answers are deferred
(a join waits for the whole rebalance), so every call that can change a group takes a `waiter`
token chosen by the caller (any object but None) and `now_ms`, and returns the `Completion`s that
became due: the caller's own response when it is immediate, other members' deferred responses when
this call finished a rebalance, and whatever timers expired up to `now_ms`. The I/O layer delivers
each response to its waiter and calls `tick()` again at `next_deadline()`. Every waiter gets
exactly one response, so a connection never waits forever.

States (Kafka's names and transitions, `GroupState.previous` holds them and every change is
checked against it):
  Empty --first join--> PreparingRebalance --everyone rejoined, or rebalance timeout-->
  CompletingRebalance --leader's SyncGroup--> Stable; a join with new metadata, a leave or an
  expired session sends CompletingRebalance/Stable back to PreparingRebalance; a rebalance that
  ends with no members leaves the group Empty; DeleteGroups makes an Empty group Dead.

Membership lives in memory only: after a broker restart clients rejoin. Committed offsets live in
the offsets store; this module only decides whether a commit is allowed.
"""

from __future__ import annotations

import struct
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from operator import itemgetter
from typing import NamedTuple

from minikafka.errors import ErrorCode

CONSUMER_PROTOCOL_TYPE = "consumer"


class GroupState(StrEnum):
    """Group states, spelled as DescribeGroups and ListGroups report them."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"

    @property
    def previous(self) -> frozenset[GroupState]:
        """The states a group may enter this one from (Kafka's ClassicGroupState)."""
        return _PREVIOUS[self]


_PREVIOUS: dict[GroupState, frozenset[GroupState]] = {
    GroupState.EMPTY: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.PREPARING_REBALANCE: frozenset({GroupState.EMPTY, GroupState.STABLE,
                                               GroupState.COMPLETING_REBALANCE}),
    GroupState.COMPLETING_REBALANCE: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.STABLE: frozenset({GroupState.COMPLETING_REBALANCE}),
    GroupState.DEAD: frozenset(GroupState),
}


class IllegalStateTransition(AssertionError):
    """A bug in the coordinator: a group was about to take a transition Kafka never takes."""


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """Coordinator settings, named after Kafka's `group.*` broker configs (same defaults)."""

    initial_rebalance_delay_ms: int = 3000  # group.initial.rebalance.delay.ms
    min_session_timeout_ms: int = 6000  # group.min.session.timeout.ms
    max_session_timeout_ms: int = 1_800_000  # group.max.session.timeout.ms


# --- requests and responses (Kafka's field names; the handlers map versions onto them) ---------


@dataclass(frozen=True, slots=True)
class JoinGroupRequest:
    group_id: str
    member_id: str
    protocol_type: str
    protocols: Sequence[tuple[str, bytes]]  # (name, metadata), most preferred first
    session_timeout_ms: int
    api_version: int  # MEMBER_ID_REQUIRED from v4, skip_assignment from v9
    rebalance_timeout_ms: int = -1  # JoinGroup v0 has none: negative means the session timeout
    group_instance_id: str | None = None  # v5+: static membership
    client_id: str = ""
    client_host: str = ""


@dataclass(frozen=True, slots=True)
class JoinGroupMember:
    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinGroupResponse:
    """`protocol_name` is None when unknown; JoinGroup v0-6 must send "" instead of null."""

    error_code: ErrorCode
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    skip_assignment: bool = False
    member_id: str = ""
    members: tuple[JoinGroupMember, ...] = ()  # only the leader's response carries them


@dataclass(frozen=True, slots=True)
class SyncGroupRequest:
    group_id: str
    generation_id: int
    member_id: str
    assignments: Sequence[tuple[str, bytes]] = ()  # (member id, assignment); leader only
    group_instance_id: str | None = None
    protocol_type: str | None = None  # v5+: checked when given
    protocol_name: str | None = None  # v5+: checked when given


@dataclass(frozen=True, slots=True)
class SyncGroupResponse:
    error_code: ErrorCode
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""  # never None: clients must always be able to decode it


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    error_code: ErrorCode


@dataclass(frozen=True, slots=True)
class MemberIdentity:
    """A leaving member: by member id, or (v3+, admin removal) by instance id with member id ""."""

    member_id: str
    group_instance_id: str | None = None


@dataclass(frozen=True, slots=True)
class LeaveGroupRequest:
    """v0-2 leave one member: pass it as the only identity."""

    group_id: str
    members: Sequence[MemberIdentity]


@dataclass(frozen=True, slots=True)
class LeaveGroupMemberResponse:
    member_id: str
    group_instance_id: str | None
    error_code: ErrorCode


@dataclass(frozen=True, slots=True)
class LeaveGroupResponse:
    """v0-2 have no per-member results: answer them with `members[0].error_code`."""

    error_code: ErrorCode
    members: tuple[LeaveGroupMemberResponse, ...] = ()


@dataclass(frozen=True, slots=True)
class OffsetCommitCheck:
    """The group fields of an OffsetCommit request; the defaults are a "simple" (v0) commit."""

    group_id: str
    member_id: str = ""
    generation_id: int = -1
    group_instance_id: str | None = None


@dataclass(frozen=True, slots=True)
class DescribedMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class DescribedGroup:
    """A group unknown to us is reported as Kafka does before DescribeGroups v6: "Dead", NONE."""

    group_id: str
    error_code: ErrorCode
    state: str
    protocol_type: str
    protocol: str
    members: tuple[DescribedMember, ...]


@dataclass(frozen=True, slots=True)
class ListedGroup:
    group_id: str
    protocol_type: str
    state: str


Response = (JoinGroupResponse | SyncGroupResponse | HeartbeatResponse | LeaveGroupResponse
            | ErrorCode)  # ErrorCode answers validate_offset_commit


class Completion(NamedTuple):
    """A response the I/O layer must now deliver to the request that registered `waiter`."""

    waiter: object
    response: Response


# --- the state machine ---------------------------------------------------------------------------


def _rebalance_timeout_ms(request: JoinGroupRequest) -> int:
    return (request.rebalance_timeout_ms if request.rebalance_timeout_ms >= 0
            else request.session_timeout_ms)


@dataclass(eq=False, slots=True)
class _Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    protocols: tuple[tuple[str, bytes], ...]
    session_timeout_ms: int
    rebalance_timeout_ms: int
    session_deadline_ms: int
    assignment: bytes | None = None  # None until the leader's SyncGroup of this generation
    join_waiter: object | None = None
    sync_waiter: object | None = None

    def update(self, request: JoinGroupRequest) -> None:
        self.protocols = tuple(request.protocols)
        self.session_timeout_ms = request.session_timeout_ms
        self.rebalance_timeout_ms = _rebalance_timeout_ms(request)

    def metadata(self, protocol: str) -> bytes:
        return dict(self.protocols)[protocol]

    def vote(self, candidates: Collection[str]) -> str:
        """The member's most preferred protocol among those every member supports."""
        return next(name for name, _ in self.protocols if name in candidates)

    def keep_alive(self, now_ms: int) -> None:
        self.session_deadline_ms = now_ms + self.session_timeout_ms

    @property
    def is_waiting(self) -> bool:
        """A member blocked in JoinGroup or SyncGroup cannot heartbeat, so its session is paused."""
        return self.join_waiter is not None or self.sync_waiter is not None


class _Group:
    """One group's state; responses go to the coordinator's shared outbox."""

    def __init__(self, group_id: str, config: GroupConfig, outbox: list[Completion]) -> None:
        self.group_id = group_id
        self._config = config
        self._outbox = outbox
        self._state = GroupState.EMPTY
        self.generation_id = 0
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.leader_id: str | None = None
        self.members: dict[str, _Member] = {}
        self.static_members: dict[str, str] = {}  # group instance id -> member id
        self.pending_members: dict[str, int] = {}  # told MEMBER_ID_REQUIRED -> rejoin deadline
        self.pending_sync: set[str] = set()  # joined this generation, SyncGroup not seen yet
        self.join_deadline_ms: int | None = None  # PreparingRebalance ends by then at the latest
        self.initial_delay_left_ms: int | None = None  # set while the initial join is delayed
        self.new_member_added = False  # a new member came during the initial delay: wait more
        self.sync_deadline_ms: int | None = None  # pending_sync members are removed then

    @property
    def state(self) -> GroupState:
        return self._state

    def transition_to(self, state: GroupState) -> None:
        """Every state change goes through here, checked against the transition table."""
        if self._state not in state.previous:
            raise IllegalStateTransition(f"group {self.group_id!r}: {self._state} -> {state} "
                                         f"(only from {', '.join(sorted(state.previous))})")
        self._state = state

    # -- helpers --

    def _reply(self, waiter: object, response: Response) -> None:
        self._outbox.append(Completion(waiter, response))

    def _candidate_protocols(self) -> set[str]:
        return set.intersection(*({name for name, _ in m.protocols} for m in self.members.values()))

    def _supports(self, protocol_type: str, protocols: Sequence[tuple[str, bytes]]) -> bool:
        names = {name for name, _ in protocols}
        if not self.members:
            return bool(protocol_type) and bool(names)
        return protocol_type == self.protocol_type and bool(names & self._candidate_protocols())

    def _select_protocol(self) -> str:
        """Each member votes for its favourite among the common protocols; the most votes wins."""
        candidates = self._candidate_protocols()
        votes = Counter(m.vote(candidates) for m in self.members.values())
        return votes.most_common(1)[0][0]

    def _rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def _check_member(self, member_id: str, group_instance_id: str | None) -> ErrorCode:
        if (group_instance_id is not None
                and self.static_members.get(group_instance_id, member_id) != member_id):
            return ErrorCode.FENCED_INSTANCE_ID
        if member_id not in self.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        return ErrorCode.NONE

    def _check_generation_member(self, member_id: str, group_instance_id: str | None,
                                 generation_id: int) -> ErrorCode:
        error = self._check_member(member_id, group_instance_id)
        if error is ErrorCode.NONE and generation_id != self.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        return error

    def _join_response(self, member: _Member, leader: str | None = None,
                       skip_assignment: bool = False) -> JoinGroupResponse:
        """This generation as `member` sees it (with `leader` reported as the leader, by default
        the real one); whoever is told it leads also gets every member's metadata."""
        leader = leader or self.leader_id or ""
        protocol = self.protocol_name or ""
        members = tuple(JoinGroupMember(m.member_id, m.group_instance_id, m.metadata(protocol))
                        for m in self.members.values()) if member.member_id == leader else ()
        return JoinGroupResponse(ErrorCode.NONE, self.generation_id, self.protocol_type,
                                 self.protocol_name, leader, skip_assignment, member.member_id,
                                 members)

    def _await_join(self, member: _Member, waiter: object) -> None:
        """Park a JoinGroup; a retried JoinGroup supersedes the earlier one, which is released."""
        if member.join_waiter is not None:
            self._reply(member.join_waiter, JoinGroupResponse(ErrorCode.REBALANCE_IN_PROGRESS,
                                                              member_id=member.member_id))
        member.join_waiter = waiter

    def _await_sync(self, member: _Member, waiter: object) -> None:
        if member.sync_waiter is not None:
            self._reply(member.sync_waiter, SyncGroupResponse(ErrorCode.REBALANCE_IN_PROGRESS))
        member.sync_waiter = waiter

    def _release_sync(self, member: _Member, error: ErrorCode) -> None:
        if member.sync_waiter is not None:
            self._reply(member.sync_waiter, SyncGroupResponse(error))
            member.sync_waiter = None

    def _release(self, member: _Member, error: ErrorCode, member_id: str = "") -> None:
        """Answer whatever `member` is blocked on with `error`."""
        if member.join_waiter is not None:
            self._reply(member.join_waiter, JoinGroupResponse(error, member_id=member_id))
            member.join_waiter = None
        self._release_sync(member, error)

    def _drop(self, member: _Member) -> None:
        """Forget `member` without reacting; callers decide whether a rebalance follows."""
        self._release(member, ErrorCode.UNKNOWN_MEMBER_ID)
        del self.members[member.member_id]
        if member.group_instance_id is not None:
            del self.static_members[member.group_instance_id]
        self.pending_sync.discard(member.member_id)
        if self.leader_id == member.member_id:
            self.leader_id = next(iter(self.members), None)

    # -- rebalancing --

    def _prepare_rebalance(self, now_ms: int) -> None:
        """Ask every member to rejoin; those waiting for an assignment learn it will not come."""
        for member in self.members.values():
            if member.sync_waiter is not None:
                member.keep_alive(now_ms)  # its session was paused while it waited
            self._release_sync(member, ErrorCode.REBALANCE_IN_PROGRESS)
        self.pending_sync.clear()
        self.sync_deadline_ms = None
        timeout = self._rebalance_timeout_ms()
        starting = self.state is GroupState.EMPTY
        self.transition_to(GroupState.PREPARING_REBALANCE)
        if starting:
            # Let the other members of a starting group arrive before the first generation.
            delay = self._config.initial_rebalance_delay_ms
            self.join_deadline_ms = now_ms + delay
            self.initial_delay_left_ms = max(timeout - delay, 0)
            self.new_member_added = False
        else:
            self.join_deadline_ms = now_ms + timeout
            self._maybe_complete_join(now_ms)

    def _rebalance(self, now_ms: int) -> None:
        """React to a membership change: start a rebalance, or see if the current one is done."""
        if self.state is GroupState.PREPARING_REBALANCE:
            self._maybe_complete_join(now_ms)
        else:
            self._prepare_rebalance(now_ms)

    def _maybe_complete_join(self, now_ms: int) -> None:
        if (self.initial_delay_left_ms is None and not self.pending_members
                and all(m.join_waiter is not None for m in self.members.values())):
            self._complete_join(now_ms)

    def _complete_join(self, now_ms: int) -> None:
        """End the join phase: dynamic members that did not rejoin are dropped (static ones keep
        their place while their session lasts) and the next generation starts."""
        self.join_deadline_ms = self.initial_delay_left_ms = None
        for member in list(self.members.values()):
            if member.join_waiter is None and member.group_instance_id is None:
                self._drop(member)
        joined = [m for m in self.members.values() if m.join_waiter is not None]
        if self.members and not joined:
            return  # only static members that did not rejoin: their rejoin or expiry ends this
        if self.leader_id not in {m.member_id for m in joined}:
            self.leader_id = joined[0].member_id if joined else None
        self.generation_id += 1
        if not self.members:
            self.protocol_name = None
            self.transition_to(GroupState.EMPTY)
            return
        self.protocol_name = self._select_protocol()
        self.transition_to(GroupState.COMPLETING_REBALANCE)
        self.pending_sync = set(self.members)
        self.sync_deadline_ms = now_ms + self._rebalance_timeout_ms()
        for member in self.members.values():
            member.assignment = None
            member.keep_alive(now_ms)
            if member.join_waiter is not None:
                self._reply(member.join_waiter, self._join_response(member))
                member.join_waiter = None

    # -- timers --

    def timers(self) -> Iterator[tuple[int, Callable[[int], None]]]:
        """(deadline, action) for everything in this group that time can trigger."""
        if self.join_deadline_ms is not None:
            yield self.join_deadline_ms, self._on_join_deadline
        if self.sync_deadline_ms is not None:
            yield self.sync_deadline_ms, self._on_sync_deadline
        for member in self.members.values():
            if not member.is_waiting:
                yield member.session_deadline_ms, partial(self._on_session_expired, member)
        for member_id, deadline in self.pending_members.items():
            yield deadline, partial(self._forget_pending, member_id)

    def _on_join_deadline(self, now_ms: int) -> None:
        if self.new_member_added and self.initial_delay_left_ms:
            delay = min(self._config.initial_rebalance_delay_ms, self.initial_delay_left_ms)
            self.initial_delay_left_ms -= delay
            self.new_member_added = False
            self.join_deadline_ms = now_ms + delay
        else:
            self._complete_join(now_ms)

    def _on_sync_deadline(self, now_ms: int) -> None:
        for member_id in list(self.pending_sync):
            self._drop(self.members[member_id])
        self._prepare_rebalance(now_ms)

    def _on_session_expired(self, member: _Member, now_ms: int) -> None:
        self._drop(member)
        self._rebalance(now_ms)

    def _forget_pending(self, member_id: str, now_ms: int) -> None:
        del self.pending_members[member_id]
        if self.state is GroupState.PREPARING_REBALANCE:
            self._maybe_complete_join(now_ms)

    # -- JoinGroup --

    def join(self, request: JoinGroupRequest, waiter: object, now_ms: int) -> None:
        if not self._supports(request.protocol_type, request.protocols):
            self._reply(waiter, JoinGroupResponse(ErrorCode.INCONSISTENT_GROUP_PROTOCOL,
                                                  member_id=request.member_id))
        elif not request.member_id:
            self._join_new(request, waiter, now_ms)
        elif request.member_id in self.pending_members:
            del self.pending_members[request.member_id]
            self._add_member(request.member_id, request, waiter, now_ms)
        else:
            self._join_known(request, waiter, now_ms)

    def _join_new(self, request: JoinGroupRequest, waiter: object, now_ms: int) -> None:
        member_id = f"{request.client_id}-{uuid.uuid4()}"
        instance_id = request.group_instance_id
        if instance_id is not None and instance_id in self.static_members:
            self._replace_static_member(instance_id, member_id, request, waiter, now_ms)
        elif instance_id is None and request.api_version >= 4:
            # The client retries with this id, so a lost response cannot leave a ghost member.
            self.pending_members[member_id] = now_ms + request.session_timeout_ms
            self._reply(waiter,
                        JoinGroupResponse(ErrorCode.MEMBER_ID_REQUIRED, member_id=member_id))
        else:
            self._add_member(member_id, request, waiter, now_ms)

    def _add_member(self, member_id: str, request: JoinGroupRequest, waiter: object,
                    now_ms: int) -> None:
        member = _Member(member_id, request.group_instance_id, request.client_id,
                         request.client_host, tuple(request.protocols),
                         request.session_timeout_ms, _rebalance_timeout_ms(request),
                         now_ms + request.session_timeout_ms, join_waiter=waiter)
        if not self.members:
            self.protocol_type = request.protocol_type
        self.members[member_id] = member
        if request.group_instance_id is not None:
            self.static_members[request.group_instance_id] = member_id
        if self.leader_id is None:
            self.leader_id = member_id
        if self.initial_delay_left_ms is not None:
            self.new_member_added = True
        self._rebalance(now_ms)

    def _join_known(self, request: JoinGroupRequest, waiter: object, now_ms: int) -> None:
        error = self._check_member(request.member_id, request.group_instance_id)
        if error is not ErrorCode.NONE:
            self._reply(waiter, JoinGroupResponse(error, member_id=request.member_id))
            return
        member = self.members[request.member_id]
        unchanged = member.protocols == tuple(request.protocols)
        if unchanged and (self.state is GroupState.COMPLETING_REBALANCE
                          or (self.state is GroupState.STABLE
                              and member.member_id != self.leader_id)):
            # A retried join: nothing to redo. (A Stable leader rejoins to force a reassignment.)
            self._reply(waiter, self._join_response(member))
            return
        member.update(request)
        self._await_join(member, waiter)
        self._rebalance(now_ms)

    def _replace_static_member(self, instance_id: str, new_id: str, request: JoinGroupRequest,
                               waiter: object, now_ms: int) -> None:
        """A restarted static member takes its old place; the old member id is fenced."""
        old_id = self.static_members[instance_id]
        member = self.members.pop(old_id)
        self._release(member, ErrorCode.FENCED_INSTANCE_ID, old_id)
        member.member_id = new_id
        member.client_id, member.client_host = request.client_id, request.client_host
        member.update(request)
        member.keep_alive(now_ms)
        self.members[new_id] = member
        self.static_members[instance_id] = new_id
        previous_leader = self.leader_id
        if previous_leader == old_id:
            self.leader_id = new_id
        if old_id in self.pending_sync:
            self.pending_sync.remove(old_id)
            self.pending_sync.add(new_id)
        if self.state is GroupState.STABLE and self._select_protocol() == self.protocol_name:
            # No rebalance: it syncs to get its old assignment. A pre-v9 leader is told the old
            # leader id so that it does not recompute an assignment nobody would receive.
            skip = request.api_version >= 9 and self.leader_id == new_id
            self._reply(waiter, self._join_response(member, new_id if skip else previous_leader,
                                                    skip))
            return
        self._await_join(member, waiter)
        self._rebalance(now_ms)

    # -- SyncGroup, Heartbeat, LeaveGroup, OffsetCommit --

    def sync(self, request: SyncGroupRequest, waiter: object, now_ms: int) -> None:
        error = self._check_generation_member(request.member_id, request.group_instance_id,
                                              request.generation_id)
        if error is ErrorCode.NONE and (
                request.protocol_type not in (None, self.protocol_type)
                or request.protocol_name not in (None, self.protocol_name)):
            error = ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        if error is ErrorCode.NONE and self.state is GroupState.PREPARING_REBALANCE:
            error = ErrorCode.REBALANCE_IN_PROGRESS
        if error is not ErrorCode.NONE:
            self._reply(waiter, SyncGroupResponse(error))
            return
        member = self.members[request.member_id]
        self.pending_sync.discard(member.member_id)
        if not self.pending_sync:
            self.sync_deadline_ms = None
        self._await_sync(member, waiter)
        if self.state is GroupState.COMPLETING_REBALANCE and member.member_id == self.leader_id:
            assignments = dict(request.assignments)
            for m in self.members.values():
                m.assignment = assignments.get(m.member_id, b"")
            self.transition_to(GroupState.STABLE)
        if self.state is GroupState.STABLE:
            self._deliver_assignments(now_ms)

    def _deliver_assignments(self, now_ms: int) -> None:
        for member in self.members.values():
            if member.sync_waiter is not None:
                self._reply(member.sync_waiter,
                            SyncGroupResponse(ErrorCode.NONE, self.protocol_type,
                                              self.protocol_name, member.assignment or b""))
                member.sync_waiter = None
                member.keep_alive(now_ms)

    def heartbeat(self, request: HeartbeatRequest, now_ms: int) -> ErrorCode:
        error = self._check_generation_member(request.member_id, request.group_instance_id,
                                              request.generation_id)
        if error is not ErrorCode.NONE:
            return error
        self.members[request.member_id].keep_alive(now_ms)
        if self.state is GroupState.PREPARING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def leave(self, identity: MemberIdentity, now_ms: int) -> ErrorCode:
        member_id = identity.member_id
        if not member_id:  # an admin removing a static member by its instance id
            if identity.group_instance_id not in self.static_members:
                return ErrorCode.UNKNOWN_MEMBER_ID
            member_id = self.static_members[identity.group_instance_id]
        elif member_id in self.pending_members:
            self._forget_pending(member_id, now_ms)
            return ErrorCode.NONE
        else:
            error = self._check_member(member_id, identity.group_instance_id)
            if error is not ErrorCode.NONE:
                return error
        self._drop(self.members[member_id])
        self._rebalance(now_ms)
        return ErrorCode.NONE

    def check_commit(self, request: OffsetCommitCheck, now_ms: int) -> ErrorCode:
        if (request.generation_id < 0 and not request.member_id
                and request.group_instance_id is None):
            # A "simple" commit (no group management) may not mix with a live group's members.
            return ErrorCode.UNKNOWN_MEMBER_ID if self.members else ErrorCode.NONE
        error = self._check_generation_member(request.member_id, request.group_instance_id,
                                              request.generation_id)
        if error is not ErrorCode.NONE:
            return error
        if self.state is GroupState.COMPLETING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS  # it joined but has no assignment yet
        self.members[request.member_id].keep_alive(now_ms)
        return ErrorCode.NONE

    # -- admin views --

    def describe(self) -> DescribedGroup:
        """Like Kafka, metadata and assignments are shown only once the group is Stable."""
        stable = self.state is GroupState.STABLE
        members = tuple(
            DescribedMember(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                            m.metadata(self.protocol_name or "") if stable else b"",
                            (m.assignment or b"") if stable else b"")
            for m in self.members.values())
        return DescribedGroup(self.group_id, ErrorCode.NONE, self.state, self.protocol_type or "",
                              (self.protocol_name or "") if stable else "", members)

    def subscribed_topics(self) -> set[str] | None:
        """Topics the members consume, or None when we cannot tell (then assume all of them)."""
        if self.protocol_type != CONSUMER_PROTOCOL_TYPE or self.protocol_name is None:
            return None
        topics: set[str] = set()
        for member in self.members.values():
            metadata = dict(member.protocols).get(self.protocol_name)
            if metadata is None:
                return None
            try:
                topics |= _subscription_topics(metadata)
            except (struct.error, ValueError):
                return None
        return topics


def _subscription_topics(metadata: bytes) -> set[str]:
    """Topics of a ConsumerProtocolSubscription: int16 version, then [string] at every version."""
    _version, count = struct.unpack_from(">hi", metadata)
    position, topics = 6, set()
    for _ in range(count):
        (length,) = struct.unpack_from(">h", metadata, position)
        position += 2
        if length < 0 or position + length > len(metadata):
            raise ValueError("truncated subscription")
        topics.add(metadata[position:position + length].decode())
        position += length
    return topics


class GroupCoordinator:
    """Every classic group on this broker (we are the coordinator for all of them).

    Methods taking `(request, waiter, now_ms)` first fire the timers due by `now_ms`, then return
    every `Completion` now due, this request's own response included when it is immediate. The
    admin views act on the state as of the last call.
    """

    def __init__(self, config: GroupConfig | None = None) -> None:
        self.config = config or GroupConfig()
        self._groups: dict[str, _Group] = {}
        self._outbox: list[Completion] = []

    def _new_group(self, group_id: str) -> _Group:
        return _Group(group_id, self.config, self._outbox)

    def _advance(self, now_ms: int) -> None:
        """Fire due timers in order, each at its own deadline: a late tick changes nothing."""
        for group in list(self._groups.values()):
            while True:
                due = min(group.timers(), key=itemgetter(0), default=None)
                if due is None or due[0] > now_ms:
                    break
                deadline, fire = due
                fire(deadline)

    def _reply(self, waiter: object, response: Response, now_ms: int) -> list[Completion]:
        self._outbox.append(Completion(waiter, response))
        return self._drain(now_ms)

    def _drain(self, now_ms: int) -> list[Completion]:
        """Fire what the call itself made due (a zero timeout), then hand over the outbox."""
        self._advance(now_ms)
        completions = self._outbox.copy()
        self._outbox.clear()
        return completions

    def tick(self, now_ms: int) -> list[Completion]:
        """Fire the timers due by `now_ms` (sessions, rebalance and sync timeouts, delays)."""
        return self._drain(now_ms)

    def next_deadline(self) -> int | None:
        """When `tick` has work next (ms, same clock as `now_ms`), or None if nothing is timed."""
        return min((deadline for group in self._groups.values()
                    for deadline, _ in group.timers()), default=None)

    def join_group(self, request: JoinGroupRequest, waiter: object, now_ms: int
                   ) -> list[Completion]:
        self._advance(now_ms)
        group = self._groups.get(request.group_id)
        if not request.group_id:
            error = ErrorCode.INVALID_GROUP_ID
        elif not (self.config.min_session_timeout_ms <= request.session_timeout_ms
                  <= self.config.max_session_timeout_ms):
            error = ErrorCode.INVALID_SESSION_TIMEOUT
        elif group is None and request.member_id:
            error = ErrorCode.UNKNOWN_MEMBER_ID
        else:
            group = group or self._new_group(request.group_id)
            group.join(request, waiter, now_ms)
            if group.members or group.pending_members:
                self._groups.setdefault(request.group_id, group)
            return self._drain(now_ms)
        return self._reply(waiter, JoinGroupResponse(error, member_id=request.member_id), now_ms)

    def sync_group(self, request: SyncGroupRequest, waiter: object, now_ms: int
                   ) -> list[Completion]:
        self._advance(now_ms)
        group = self._groups.get(request.group_id)
        if group is None:
            error = self._no_group_error(request.group_id)
            return self._reply(waiter, SyncGroupResponse(error), now_ms)
        group.sync(request, waiter, now_ms)
        return self._drain(now_ms)

    def heartbeat(self, request: HeartbeatRequest, waiter: object, now_ms: int
                  ) -> list[Completion]:
        self._advance(now_ms)
        group = self._groups.get(request.group_id)
        error = (group.heartbeat(request, now_ms) if group
                 else self._no_group_error(request.group_id))
        return self._reply(waiter, HeartbeatResponse(error), now_ms)

    @staticmethod
    def _no_group_error(group_id: str) -> ErrorCode:
        return ErrorCode.UNKNOWN_MEMBER_ID if group_id else ErrorCode.INVALID_GROUP_ID

    def leave_group(self, request: LeaveGroupRequest, waiter: object, now_ms: int
                    ) -> list[Completion]:
        self._advance(now_ms)
        if not request.group_id:
            return self._reply(waiter, LeaveGroupResponse(ErrorCode.INVALID_GROUP_ID), now_ms)
        group = self._groups.get(request.group_id)
        results = tuple(
            LeaveGroupMemberResponse(
                identity.member_id, identity.group_instance_id,
                group.leave(identity, now_ms) if group else ErrorCode.UNKNOWN_MEMBER_ID)
            for identity in request.members)
        return self._reply(waiter, LeaveGroupResponse(ErrorCode.NONE, results), now_ms)

    def validate_offset_commit(self, request: OffsetCommitCheck, waiter: object, now_ms: int
                               ) -> list[Completion]:
        """Answer (an `ErrorCode` for every partition of the commit) whether it may be stored."""
        self._advance(now_ms)
        group = self._groups.get(request.group_id)
        if group is not None:
            error = group.check_commit(request, now_ms)
        elif request.generation_id < 0:
            # Not using group management: remember the group so that it is listed and deletable.
            self._groups[request.group_id] = self._new_group(request.group_id)
            error = ErrorCode.NONE
        else:
            error = ErrorCode.ILLEGAL_GENERATION  # a generation of a group that no longer exists
        return self._reply(waiter, error, now_ms)

    # -- admin: no timers, no waiters --

    def load_group(self, group_id: str) -> None:
        """Register a group known from committed offsets (at startup) as Empty, as Kafka does
        when it loads __consumer_offsets, so that it is listed, described and deletable."""
        self._groups.setdefault(group_id, self._new_group(group_id))

    def describe_groups(self, group_ids: Iterable[str]) -> list[DescribedGroup]:
        return [group.describe() if (group := self._groups.get(group_id))
                else DescribedGroup(group_id, ErrorCode.NONE, GroupState.DEAD, "", "", ())
                for group_id in group_ids]

    def list_groups(self, states: Collection[str] = ()) -> list[ListedGroup]:
        """All groups, or those in `states` (ListGroups v4 filter, case-insensitive)."""
        wanted = {state.lower() for state in states}
        return [ListedGroup(group.group_id, group.protocol_type or "", group.state)
                for group in self._groups.values()
                if not wanted or group.state.lower() in wanted]

    def delete_groups(self, group_ids: Iterable[str]) -> list[tuple[str, ErrorCode]]:
        """Only Empty groups can go; the caller then deletes their committed offsets too."""
        results = []
        for group_id in group_ids:
            group = self._groups.get(group_id)
            if group is None:
                error = ErrorCode.GROUP_ID_NOT_FOUND
            elif group.state is not GroupState.EMPTY:
                error = ErrorCode.NON_EMPTY_GROUP
            else:
                group.transition_to(GroupState.DEAD)
                del self._groups[group_id]
                error = ErrorCode.NONE
            results.append((group_id, error))
        return results

    def offset_delete_errors(self, group_id: str, topics: Iterable[str]
                             ) -> tuple[ErrorCode, dict[str, ErrorCode]]:
        """OffsetDelete: (group error, error per topic). A live consumer group keeps the offsets
        of topics it is subscribed to (GROUP_SUBSCRIBED_TO_TOPIC)."""
        group = self._groups.get(group_id)
        if group is None:
            return ErrorCode.GROUP_ID_NOT_FOUND, {}
        if group.state is GroupState.EMPTY:
            return ErrorCode.NONE, dict.fromkeys(topics, ErrorCode.NONE)
        if group.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return ErrorCode.NON_EMPTY_GROUP, {}
        subscribed = group.subscribed_topics()
        return ErrorCode.NONE, {
            topic: ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC
            if subscribed is None or topic in subscribed else ErrorCode.NONE
            for topic in topics}
