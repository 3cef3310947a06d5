"""The classic group coordinator, driven as a pure state machine with a fake clock."""

from __future__ import annotations

import struct
from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from minikafka.broker.groups import (
    GroupConfig,
    GroupCoordinator,
    GroupState,
    HeartbeatRequest,
    HeartbeatResponse,
    IllegalStateTransition,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
    MemberIdentity,
    OffsetCommitCheck,
    Response,
    SyncGroupRequest,
    SyncGroupResponse,
    _Group,
)
from minikafka.errors import ErrorCode

G = "shop-orders"
SESSION = 1_000
REBALANCE = 5_000
DELAY = 100
SETTLE = 2 * DELAY  # members joining together extend the initial delay once
RANGE = ("range", b"range-meta")
ROUNDROBIN = ("roundrobin", b"rr-meta")


class Waiter:
    """A stand-in for the I/O layer's per-request handle (a future, in the broker)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Waiter({self.name})"


class Harness:
    """Sends requests at the fake clock's time and records every completion by waiter."""

    def __init__(self, delay_ms: int = DELAY) -> None:
        self.coordinator = GroupCoordinator(GroupConfig(
            initial_rebalance_delay_ms=delay_ms, min_session_timeout_ms=10,
            max_session_timeout_ms=60_000))
        self.now = 0
        self.delivered: dict[Waiter, list[Response]] = defaultdict(list)

    def _deliver(self, completions: list) -> None:
        for waiter, response in completions:
            self.delivered[waiter].append(response)

    def advance(self, ms: int) -> None:
        self.now += ms
        self._deliver(self.coordinator.tick(self.now))

    def response(self, waiter: Waiter) -> Response | None:
        """The waiter's response, if it has one yet; never more than one."""
        responses = self.delivered.get(waiter, [])
        assert len(responses) <= 1, f"{waiter} answered twice: {responses}"
        return responses[0] if responses else None

    def join(self, member_id: str = "", *, version: int = 5, instance: str | None = None,
             protocols: tuple = (RANGE, ROUNDROBIN), protocol_type: str = "consumer",
             session: int = SESSION, rebalance: int = REBALANCE, client: str = "cli",
             group: str = G) -> Waiter:
        waiter = Waiter(f"join {member_id or instance or client}@{self.now}")
        request = JoinGroupRequest(group, member_id, protocol_type, protocols, session, version,
                                   rebalance, instance, client, "/10.0.0.1")
        self._deliver(self.coordinator.join_group(request, waiter, self.now))
        return waiter

    def sync(self, member_id: str, generation: int, assignments: dict[str, bytes] | None = None,
             *, instance: str | None = None, protocol_type: str | None = None,
             protocol_name: str | None = None) -> Waiter:
        waiter = Waiter(f"sync {member_id}@{self.now}")
        request = SyncGroupRequest(G, generation, member_id, tuple((assignments or {}).items()),
                                   instance, protocol_type, protocol_name)
        self._deliver(self.coordinator.sync_group(request, waiter, self.now))
        return waiter

    def _immediate(self, call, request) -> Response:
        waiter = Waiter(f"{call.__name__}@{self.now}")
        self._deliver(call(request, waiter, self.now))
        response = self.response(waiter)
        assert response is not None, "this request is always answered at once"
        return response

    def heartbeat(self, member_id: str, generation: int, instance: str | None = None
                  ) -> ErrorCode:
        response = self._immediate(self.coordinator.heartbeat,
                                   HeartbeatRequest(G, generation, member_id, instance))
        assert isinstance(response, HeartbeatResponse)
        return response.error_code

    def leave(self, *members: MemberIdentity, group: str = G) -> LeaveGroupResponse:
        response = self._immediate(self.coordinator.leave_group, LeaveGroupRequest(group, members))
        assert isinstance(response, LeaveGroupResponse)
        return response

    def commit(self, member_id: str = "", generation: int = -1, instance: str | None = None,
               group: str = G) -> ErrorCode:
        response = self._immediate(self.coordinator.validate_offset_commit,
                                   OffsetCommitCheck(group, member_id, generation, instance))
        assert isinstance(response, ErrorCode)
        return response

    def joined(self, waiter: Waiter) -> JoinGroupResponse:
        response = self.response(waiter)
        assert isinstance(response, JoinGroupResponse), f"{waiter} not answered: {response}"
        return response

    def synced(self, waiter: Waiter) -> SyncGroupResponse:
        response = self.response(waiter)
        assert isinstance(response, SyncGroupResponse), f"{waiter} not answered: {response}"
        return response

    def state(self, group: str = G) -> str:
        return self.coordinator.describe_groups([group])[0].state

    def stable_group(self, *instances: str | None) -> list[JoinGroupResponse]:
        """Members join (one per entry; None = dynamic) and sync; each is assigned its own id."""
        waiters = [self.join(instance=instance, client=f"c{i}", version=3 if instance is None
                             else 5) for i, instance in enumerate(instances)]
        self.advance(SETTLE)
        joins = [self.joined(w) for w in waiters]
        generation = joins[0].generation_id
        leader = next(j for j in joins if j.members)
        followers = [self.sync(j.member_id, generation) for j in joins if j is not leader]
        self.sync(leader.member_id, generation,
                  {j.member_id: j.member_id.encode() for j in joins})
        assert all(self.synced(w).error_code is ErrorCode.NONE for w in followers)
        assert self.state() == "Stable"
        return joins


def subscription(*topics: str) -> bytes:
    """A ConsumerProtocolSubscription v0: version, topics, user data."""
    body = struct.pack(">hi", 0, len(topics))
    for topic in topics:
        body += struct.pack(">h", len(topic)) + topic.encode()
    return body + struct.pack(">i", -1)


# --- joining -------------------------------------------------------------------------------------


def test_initial_join_waits_for_the_rebalance_delay() -> None:
    h = Harness()
    waiter = h.join(version=3)
    assert h.state() == "PreparingRebalance"
    assert h.coordinator.next_deadline() == DELAY
    h.advance(DELAY - 1)
    assert h.response(waiter) is None
    h.advance(1)
    joined = h.joined(waiter)
    assert joined.error_code is ErrorCode.NONE
    assert joined.generation_id == 1
    assert joined.leader == joined.member_id
    assert joined.member_id.startswith("cli-")
    assert joined.protocol_type == "consumer" and joined.protocol_name == "range"
    assert [m.metadata for m in joined.members] == [b"range-meta"]
    assert h.state() == "CompletingRebalance"


def test_initial_delay_extends_while_members_arrive_up_to_the_rebalance_timeout() -> None:
    h = Harness()
    first = h.join(version=3, rebalance=250)
    h.advance(50)
    h.join(version=3, rebalance=250)
    h.advance(50)  # t=100: a member arrived during the delay, so wait another delay
    assert h.response(first) is None
    h.advance(50)
    h.join(version=3, rebalance=250)
    h.advance(50)  # t=200: again, but only 50 ms of the rebalance timeout remain
    assert h.response(first) is None
    h.advance(20)
    h.join(version=3, rebalance=250)
    h.advance(30)  # t=250: the rebalance timeout is spent
    joined = h.joined(first)
    assert len(joined.members) == 4 and joined.generation_id == 1


def test_three_members_join_leader_gets_metadata_and_sync_distributes_assignments() -> None:
    h = Harness()
    waiters = [h.join(version=3, client=f"c{i}") for i in range(3)]
    h.advance(SETTLE)
    joins = [h.joined(w) for w in waiters]
    leader, *followers = joins
    assert {j.generation_id for j in joins} == {1}
    assert {j.leader for j in joins} == {leader.member_id}
    assert [m.member_id for m in leader.members] == [j.member_id for j in joins]
    assert all(f.members == () for f in followers)

    pending = [h.sync(f.member_id, 1) for f in followers]
    assert all(h.response(w) is None for w in pending)  # waiting for the leader's assignment
    # The leader forgets the last follower: it still gets a decodable (empty) assignment.
    leader_sync = h.sync(leader.member_id, 1, {leader.member_id: b"p0,p1",
                                               followers[0].member_id: b"p2,p3"})
    assert h.synced(leader_sync).assignment == b"p0,p1"
    assert h.synced(pending[0]).assignment == b"p2,p3"
    assert h.synced(pending[1]) == SyncGroupResponse(ErrorCode.NONE, "consumer", "range", b"")
    assert h.state() == "Stable"
    # A late SyncGroup in Stable gets the stored assignment at once.
    assert h.synced(h.sync(followers[0].member_id, 1)).assignment == b"p2,p3"


@pytest.mark.parametrize(("preferences", "chosen"), [
    ([(RANGE, ROUNDROBIN), (ROUNDROBIN, RANGE), (ROUNDROBIN,)], "roundrobin"),  # only common one
    ([(RANGE, ROUNDROBIN), (ROUNDROBIN, RANGE), (RANGE, ROUNDROBIN)], "range"),  # two votes to one
])
def test_protocol_is_chosen_by_votes_among_those_every_member_supports(
        preferences: list, chosen: str) -> None:
    h = Harness()
    waiters = [h.join(version=3, protocols=p) for p in preferences]
    h.advance(SETTLE)
    leader = h.joined(waiters[0])
    assert leader.protocol_name == chosen
    assert all(m.metadata == dict(preferences[i])[chosen] for i, m in enumerate(leader.members))


def test_inconsistent_group_protocol() -> None:
    h = Harness()
    assert h.joined(h.join(version=3, protocols=())).error_code is \
        ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert h.joined(h.join(version=3, protocol_type="")).error_code is \
        ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert h.coordinator.list_groups() == []  # failed joins leave no group behind
    h.join(version=3, protocols=(RANGE,))
    for bad in (h.join(version=3, protocol_type="connect"),
                h.join(version=3, protocols=(ROUNDROBIN,))):
        assert h.joined(bad).error_code is ErrorCode.INCONSISTENT_GROUP_PROTOCOL


@pytest.mark.parametrize("version", range(10))
def test_member_id_required_only_from_v4_for_dynamic_members(version: int) -> None:
    h = Harness()
    waiter = h.join(version=version)
    if version < 4:  # kafka-go (v1/v2) must get its member id with the generation
        assert h.response(waiter) is None
        h.advance(DELAY)
        assert h.joined(waiter).error_code is ErrorCode.NONE
        return
    required = h.joined(waiter)
    assert required.error_code is ErrorCode.MEMBER_ID_REQUIRED
    assert required.member_id and required.generation_id == -1
    rejoin = h.join(required.member_id, version=version)
    h.advance(DELAY)
    assert h.joined(rejoin).member_id == required.member_id
    if version >= 5:  # a static member is never asked for a member id
        static = h.join(version=version, instance="pod-1")
        assert h.response(static) is None


def test_pending_member_that_never_rejoins_expires() -> None:
    h = Harness()
    (only,) = h.stable_group(None)
    required = h.joined(h.join(version=4))
    assert h.state() == "Stable"  # being told a member id does not start a rebalance
    h.advance(SESSION // 2)
    assert h.heartbeat(only.member_id, 1) is ErrorCode.NONE
    h.advance(SESSION // 2)
    assert h.joined(h.join(required.member_id, version=4)).error_code is \
        ErrorCode.UNKNOWN_MEMBER_ID


def test_join_errors() -> None:
    h = Harness()
    assert h.joined(h.join(group="")).error_code is ErrorCode.INVALID_GROUP_ID
    assert h.joined(h.join(session=5)).error_code is ErrorCode.INVALID_SESSION_TIMEOUT
    assert h.joined(h.join(session=60_001)).error_code is ErrorCode.INVALID_SESSION_TIMEOUT
    assert h.joined(h.join("ghost")).error_code is ErrorCode.UNKNOWN_MEMBER_ID


def test_retried_join_supersedes_the_first_and_every_waiter_is_answered_once() -> None:
    h = Harness()
    first = h.join(version=3)
    member_id = h.coordinator.describe_groups([G])[0].members[0].member_id
    retry = h.join(member_id, version=3)
    assert h.joined(first).error_code is ErrorCode.REBALANCE_IN_PROGRESS
    h.advance(SETTLE)
    assert h.joined(retry).generation_id == 1


def test_join_while_completing_with_same_metadata_returns_current_generation() -> None:
    h = Harness()
    a, b = h.join(version=3), h.join(version=3)
    h.advance(SETTLE)
    leader, follower = h.joined(a), h.joined(b)
    again = h.joined(h.join(follower.member_id, version=3))
    assert (again.generation_id, again.leader, again.members) == (1, leader.member_id, ())
    again = h.joined(h.join(leader.member_id, version=3))
    assert len(again.members) == 2
    assert h.state() == "CompletingRebalance"


# --- leaving, expiry, timeouts -------------------------------------------------------------------


def test_member_leaving_triggers_a_rebalance() -> None:
    h = Harness()
    a, b = h.stable_group(None, None)
    result = h.leave(MemberIdentity(b.member_id))
    assert result.members[0].error_code is ErrorCode.NONE
    assert h.state() == "PreparingRebalance"
    assert h.heartbeat(a.member_id, 1) is ErrorCode.REBALANCE_IN_PROGRESS
    rejoined = h.joined(h.join(a.member_id, version=3))  # the only member left: done at once
    assert (rejoined.generation_id, rejoined.leader) == (2, a.member_id)
    assert [m.member_id for m in rejoined.members] == [a.member_id]


def test_last_member_leaving_empties_the_group() -> None:
    h = Harness()
    (a,) = h.stable_group(None)
    h.leave(MemberIdentity(a.member_id))
    described = h.coordinator.describe_groups([G])[0]
    assert (described.state, described.members) == ("Empty", ())
    assert h.heartbeat(a.member_id, 1) is ErrorCode.UNKNOWN_MEMBER_ID


def test_session_timeout_evicts_a_silent_member() -> None:
    h = Harness()
    a, b = h.stable_group(None, None)  # both synced just now
    h.advance(SESSION - 1)
    assert h.heartbeat(a.member_id, 1) is ErrorCode.NONE
    h.advance(1)
    assert h.state() == "PreparingRebalance"  # b never heartbeated
    assert h.heartbeat(a.member_id, 1) is ErrorCode.REBALANCE_IN_PROGRESS
    assert h.heartbeat(b.member_id, 1) is ErrorCode.UNKNOWN_MEMBER_ID
    rejoined = h.joined(h.join(a.member_id, version=3))
    assert [m.member_id for m in rejoined.members] == [a.member_id]


def test_rebalance_timeout_removes_members_that_did_not_rejoin() -> None:
    h = Harness()
    a, b, c = h.stable_group(None, None, None)
    rejoin_a = h.join(a.member_id, version=3, protocols=(ROUNDROBIN,))  # new metadata: rebalance
    rejoin_b = h.join(b.member_id, version=3)
    for _ in range(REBALANCE // (SESSION // 2)):  # c heartbeats but never rejoins
        assert h.response(rejoin_a) is None
        assert h.heartbeat(c.member_id, 1) is ErrorCode.REBALANCE_IN_PROGRESS
        h.advance(SESSION // 2)
    new_a, new_b = h.joined(rejoin_a), h.joined(rejoin_b)
    assert new_a.generation_id == new_b.generation_id == 2
    assert {m.member_id for m in new_a.members} == {a.member_id, b.member_id}
    assert new_a.protocol_name == "roundrobin"
    assert h.heartbeat(c.member_id, 1) is ErrorCode.UNKNOWN_MEMBER_ID


def test_join_v0_uses_the_session_timeout_as_rebalance_timeout() -> None:
    h = Harness()
    waiters = [h.join(version=0, rebalance=-1) for _ in range(2)]
    h.advance(SETTLE)
    a, b = (h.joined(w) for w in waiters)
    rejoin = h.join(a.member_id, version=0, rebalance=-1, protocols=(ROUNDROBIN,))
    h.advance(SESSION // 2)
    assert h.heartbeat(b.member_id, 1) is ErrorCode.REBALANCE_IN_PROGRESS
    h.advance(SESSION // 2)
    assert [m.member_id for m in h.joined(rejoin).members] == [a.member_id]


def test_member_that_never_syncs_is_removed_after_the_rebalance_timeout() -> None:
    h = Harness()
    waiters = [h.join(version=3, session=REBALANCE * 2) for _ in range(2)]
    h.advance(SETTLE)
    leader, lazy = (h.joined(w) for w in waiters)
    h.sync(leader.member_id, 1, {leader.member_id: b"all"})
    h.advance(REBALANCE)
    assert h.state() == "PreparingRebalance"
    assert h.heartbeat(lazy.member_id, 1) is ErrorCode.UNKNOWN_MEMBER_ID


def test_followers_waiting_in_sync_learn_when_the_leader_dies() -> None:
    h = Harness()
    waiters = [h.join(version=3) for _ in range(2)]
    h.advance(SETTLE)
    _, follower = (h.joined(w) for w in waiters)
    waiting = h.sync(follower.member_id, 1)
    h.advance(SESSION)  # the leader never syncs nor heartbeats; the waiting follower is kept
    assert h.synced(waiting) == SyncGroupResponse(ErrorCode.REBALANCE_IN_PROGRESS)
    assert h.heartbeat(follower.member_id, 1) is ErrorCode.REBALANCE_IN_PROGRESS


def test_heartbeat_and_sync_errors() -> None:
    h = Harness()
    a, b = h.stable_group(None, None)
    assert h.heartbeat(a.member_id, 0) is ErrorCode.ILLEGAL_GENERATION
    assert h.heartbeat("ghost", 1) is ErrorCode.UNKNOWN_MEMBER_ID
    assert h.synced(h.sync(a.member_id, 7)).error_code is ErrorCode.ILLEGAL_GENERATION
    assert h.synced(h.sync(a.member_id, 1, protocol_type="connect")).error_code is \
        ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert h.synced(h.sync(a.member_id, 1, protocol_name="roundrobin")).error_code is \
        ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    ok = h.synced(h.sync(a.member_id, 1, protocol_type="consumer", protocol_name="range"))
    assert ok.error_code is ErrorCode.NONE
    h.leave(MemberIdentity(b.member_id))
    assert h.synced(h.sync(a.member_id, 1)).error_code is ErrorCode.REBALANCE_IN_PROGRESS
    for group, error in (("nope", ErrorCode.UNKNOWN_MEMBER_ID), ("", ErrorCode.INVALID_GROUP_ID)):
        waiter = Waiter("sync")
        (done,) = h.coordinator.sync_group(SyncGroupRequest(group, 1, "m"), waiter, h.now)
        assert done == (waiter, SyncGroupResponse(error))


def test_leave_group_batch_by_member_and_instance_id() -> None:
    h = Harness()
    a, _, c = h.stable_group("pod-a", "pod-b", None)
    result = h.leave(MemberIdentity("", "pod-b"), MemberIdentity(c.member_id),
                     MemberIdentity("", "pod-z"), MemberIdentity("ghost"),
                     MemberIdentity("stale", "pod-a"))
    assert [m.error_code for m in result.members] == [
        ErrorCode.NONE, ErrorCode.NONE, ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.UNKNOWN_MEMBER_ID,
        ErrorCode.FENCED_INSTANCE_ID]
    assert [m.member_id for m in h.coordinator.describe_groups([G])[0].members] == [a.member_id]
    unknown = h.leave(MemberIdentity("m1"), group="nope")
    assert (unknown.error_code, unknown.members[0].error_code) == (
        ErrorCode.NONE, ErrorCode.UNKNOWN_MEMBER_ID)
    assert h.leave(MemberIdentity("m1"), group="").error_code is ErrorCode.INVALID_GROUP_ID


# --- static membership ---------------------------------------------------------------------------


def test_static_member_restart_takes_its_place_without_a_rebalance() -> None:
    h = Harness()
    leader, follower = h.stable_group("pod-a", "pod-b")
    h.advance(SESSION // 2)
    restarted = h.joined(h.join(instance="pod-b", version=5))
    assert restarted.error_code is ErrorCode.NONE
    assert restarted.member_id != follower.member_id
    assert (restarted.generation_id, restarted.leader, restarted.members) == (
        1, leader.member_id, ())
    assert h.state() == "Stable"
    assert h.heartbeat(leader.member_id, 1, "pod-a") is ErrorCode.NONE  # nobody rebalances
    synced = h.synced(h.sync(restarted.member_id, 1, instance="pod-b"))
    assert synced.assignment == follower.member_id.encode()  # its old assignment
    # The old incarnation is fenced when it says who it is, unknown otherwise.
    assert h.heartbeat(follower.member_id, 1, "pod-b") is ErrorCode.FENCED_INSTANCE_ID
    assert h.heartbeat(follower.member_id, 1) is ErrorCode.UNKNOWN_MEMBER_ID
    assert h.joined(h.join(follower.member_id, instance="pod-b")).error_code is \
        ErrorCode.FENCED_INSTANCE_ID
    assert h.synced(h.sync(follower.member_id, 1, instance="pod-b")).error_code is \
        ErrorCode.FENCED_INSTANCE_ID
    assert h.commit(follower.member_id, 1, "pod-b") is ErrorCode.FENCED_INSTANCE_ID


@pytest.mark.parametrize("version", [5, 9])
def test_static_leader_restart(version: int) -> None:
    h = Harness()
    leader, follower = h.stable_group("pod-a", "pod-b")
    restarted = h.joined(h.join(instance="pod-a", version=version))
    assert h.state() == "Stable" and restarted.generation_id == 1
    if version >= 9:  # told it leads, with the members, but must not reassign
        assert restarted.skip_assignment and restarted.leader == restarted.member_id
        assert {m.group_instance_id for m in restarted.members} == {"pod-a", "pod-b"}
    else:  # told the old leader id, so that it does not compute an assignment
        assert (restarted.leader, restarted.members) == (leader.member_id, ())
    assert h.synced(h.sync(restarted.member_id, 1)).assignment == leader.member_id.encode()
    assert h.heartbeat(follower.member_id, 1) is ErrorCode.NONE


def test_static_member_restart_with_a_new_protocol_choice_rebalances() -> None:
    h = Harness()
    h.stable_group("pod-a", "pod-b")
    waiter = h.join(instance="pod-b", protocols=(ROUNDROBIN,))
    assert h.response(waiter) is None and h.state() == "PreparingRebalance"


def test_static_member_restart_during_a_rebalance_fences_the_pending_join() -> None:
    h = Harness()
    leader, follower = h.stable_group("pod-a", "pod-b")
    old = h.join(follower.member_id, instance="pod-b", protocols=(ROUNDROBIN,))
    new = h.join(instance="pod-b", protocols=(ROUNDROBIN,))
    assert h.joined(old).error_code is ErrorCode.FENCED_INSTANCE_ID
    assert h.response(new) is None
    rejoined_leader = h.join(leader.member_id, instance="pod-a")
    assert h.joined(new).generation_id == h.joined(rejoined_leader).generation_id == 2


def test_static_member_that_does_not_rejoin_keeps_its_place_while_its_session_lasts() -> None:
    h = Harness()
    dynamic, static = h.join(version=3), h.join(instance="pod-b", session=4 * REBALANCE)
    h.advance(SETTLE)
    a, b = h.joined(dynamic), h.joined(static)
    h.sync(b.member_id, 1)
    h.sync(a.member_id, 1, {a.member_id: b"p0", b.member_id: b"p1"})
    rejoin = h.join(a.member_id, version=3, protocols=(ROUNDROBIN,), session=4 * REBALANCE)
    h.advance(REBALANCE)
    joined = h.joined(rejoin)  # the rebalance timeout ends the join without removing pod-b
    assert [m.group_instance_id for m in joined.members] == [None, "pod-b"]
    assert h.heartbeat(b.member_id, 1, "pod-b") is ErrorCode.ILLEGAL_GENERATION


# --- offset commits ------------------------------------------------------------------------------


def test_offset_commit_validation() -> None:
    h = Harness()
    assert h.commit(group="simple") is ErrorCode.NONE  # no group management
    assert [g.group_id for g in h.coordinator.list_groups()] == ["simple"]
    assert h.state("simple") == "Empty"
    assert h.commit("m", 3, group="gone") is ErrorCode.ILLEGAL_GENERATION

    a, b = h.stable_group(None, None)
    assert h.commit(a.member_id, 1) is ErrorCode.NONE
    assert h.commit(a.member_id, 0) is ErrorCode.ILLEGAL_GENERATION
    assert h.commit("ghost", 1) is ErrorCode.UNKNOWN_MEMBER_ID
    assert h.commit() is ErrorCode.UNKNOWN_MEMBER_ID  # simple commits clash with live members

    h.leave(MemberIdentity(b.member_id))  # PreparingRebalance: still allowed, heartbeat says more
    assert h.commit(a.member_id, 1) is ErrorCode.NONE
    h.join(a.member_id, version=3)  # CompletingRebalance: joined, not yet assigned
    assert h.commit(a.member_id, 2) is ErrorCode.REBALANCE_IN_PROGRESS
    h.leave(MemberIdentity(a.member_id))
    assert h.commit() is ErrorCode.NONE  # Empty again: offsets can be reset by tools


def test_committing_keeps_a_member_alive() -> None:
    h = Harness()
    (a,) = h.stable_group(None)
    for _ in range(4):
        h.advance(SESSION // 2)
        assert h.commit(a.member_id, 1) is ErrorCode.NONE
    assert h.state() == "Stable"


# --- admin views ---------------------------------------------------------------------------------


def test_describe_list_and_delete() -> None:
    h = Harness()
    a, b = h.stable_group(None, "pod-b")
    described = h.coordinator.describe_groups([G, "nope"])
    group, unknown = described
    assert (group.error_code, group.state, group.protocol_type, group.protocol) == (
        ErrorCode.NONE, "Stable", "consumer", "range")
    assert [(m.member_id, m.group_instance_id, m.client_id, m.client_host, m.metadata,
             m.assignment) for m in group.members] == [
        (a.member_id, None, "c0", "/10.0.0.1", b"range-meta", a.member_id.encode()),
        (b.member_id, "pod-b", "c1", "/10.0.0.1", b"range-meta", b.member_id.encode())]
    assert (unknown.error_code, unknown.state, unknown.members) == (ErrorCode.NONE, "Dead", ())

    h.coordinator.load_group("restored")
    listed = {(g.group_id, g.protocol_type, g.state) for g in h.coordinator.list_groups()}
    assert listed == {(G, "consumer", "Stable"), ("restored", "", "Empty")}
    assert [g.group_id for g in h.coordinator.list_groups(["empty"])] == ["restored"]

    h.leave(MemberIdentity(a.member_id))
    preparing = h.coordinator.describe_groups([G])[0]
    assert preparing.state == "PreparingRebalance" and preparing.protocol == ""
    assert [(m.metadata, m.assignment) for m in preparing.members] == [(b"", b"")]

    assert h.coordinator.delete_groups([G, "restored", "nope"]) == [
        (G, ErrorCode.NON_EMPTY_GROUP), ("restored", ErrorCode.NONE),
        ("nope", ErrorCode.GROUP_ID_NOT_FOUND)]
    assert h.coordinator.describe_groups(["restored"])[0].state == GroupState.DEAD


def test_offset_delete_keeps_offsets_of_subscribed_topics() -> None:
    h = Harness()
    assert h.coordinator.offset_delete_errors(G, ["orders"]) == (ErrorCode.GROUP_ID_NOT_FOUND, {})
    h.join(version=3, protocols=(("range", subscription("orders", "payments")),))
    h.advance(DELAY)
    assert h.coordinator.offset_delete_errors(G, ["orders", "stock"]) == (ErrorCode.NONE, {
        "orders": ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC, "stock": ErrorCode.NONE})
    h.join(version=3, protocols=(("range", subscription("stock")),), group="mixed")
    h.join(version=3, protocols=(("range", b"\x00"),), group="mixed")  # undecodable metadata
    h.advance(SETTLE)
    assert h.coordinator.offset_delete_errors("mixed", ["orders"]) == (ErrorCode.NONE, {
        "orders": ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC})  # cannot tell: keep everything
    h.join(version=3, protocol_type="connect", group="workers")
    assert h.coordinator.offset_delete_errors("workers", ["t"]) == (ErrorCode.NON_EMPTY_GROUP, {})
    h.coordinator.load_group("idle")
    assert h.coordinator.offset_delete_errors("idle", ["t"]) == (ErrorCode.NONE, {
        "t": ErrorCode.NONE})


def test_next_deadline_tracks_the_earliest_timer() -> None:
    h = Harness()
    assert h.coordinator.next_deadline() is None
    h.stable_group(None)
    assert h.coordinator.next_deadline() == h.now + SESSION  # the member's session


# --- the state transition table ------------------------------------------------------------------


def test_group_states_follow_kafkas_transition_table() -> None:
    empty, preparing, completing, stable, dead = GroupState
    assert {state: state.previous for state in GroupState} == {
        empty: {preparing},
        preparing: {empty, stable, completing},
        completing: {preparing},
        stable: {completing},
        dead: set(GroupState),
    }


def test_an_illegal_transition_raises_and_leaves_the_state_alone() -> None:
    group = _Group(G, GroupConfig(), [])
    with pytest.raises(IllegalStateTransition, match="Empty -> Stable"):
        group.transition_to(GroupState.STABLE)
    assert group.state is GroupState.EMPTY
    for state in (GroupState.PREPARING_REBALANCE, GroupState.COMPLETING_REBALANCE,
                  GroupState.STABLE, GroupState.PREPARING_REBALANCE, GroupState.EMPTY,
                  GroupState.DEAD, GroupState.DEAD):
        group.transition_to(state)
    with pytest.raises(IllegalStateTransition, match="Dead -> PreparingRebalance"):
        group.transition_to(GroupState.PREPARING_REBALANCE)


# --- property: any interleaving keeps the group coherent -----------------------------------------


@dataclass
class Client:
    """What a well-behaved (or not) consumer remembers between requests."""

    instance: str | None
    member_id: str = ""
    generation: int = -1
    to_assign: tuple[str, ...] = ()  # member ids it must assign while it is the leader
    waiters: list[Waiter] = field(default_factory=list)


class GroupMachine(RuleBasedStateMachine):
    """Three dynamic and two static clients doing anything in any order, with time passing."""

    def __init__(self) -> None:
        super().__init__()
        self.h = Harness()
        self.clients = [Client(None), Client(None), Client(None), Client("pod-a"), Client("pod-b")]
        self.owner: dict[Waiter, Client] = {}
        self.seen: set[Waiter] = set()
        self.generations: dict[str, int] = {}

    clients = st.integers(0, 4)

    def _track(self, client: Client, waiter: Waiter) -> None:
        self.owner[waiter] = client
        client.waiters.append(waiter)
        self._learn()

    def _learn(self) -> None:
        """Let each client react to its new responses as a real client would."""
        for waiter, responses in self.h.delivered.items():
            if waiter in self.seen or waiter not in self.owner:
                continue
            self.seen.add(waiter)
            client, (response,) = self.owner[waiter], responses
            if not isinstance(response, JoinGroupResponse):
                continue
            if response.error_code in (ErrorCode.NONE, ErrorCode.MEMBER_ID_REQUIRED):
                client.member_id = response.member_id
                client.generation = response.generation_id
                client.to_assign = tuple(m.member_id for m in response.members)
            elif response.error_code in (ErrorCode.UNKNOWN_MEMBER_ID,
                                         ErrorCode.FENCED_INSTANCE_ID):
                client.member_id = ""

    @rule(i=clients, version=st.sampled_from([1, 3, 4, 5, 9]),
          protocols=st.sampled_from([(RANGE, ROUNDROBIN), (ROUNDROBIN, RANGE), (ROUNDROBIN,)]),
          rebalance=st.integers(100, 3_000))
    def join(self, i: int, version: int, protocols: tuple, rebalance: int) -> None:
        c = self.clients[i]
        self._track(c, self.h.join(c.member_id, version=version if c.instance is None else 5,
                                   instance=c.instance, protocols=protocols, rebalance=rebalance))

    @rule(i=clients)
    def sync(self, i: int) -> None:
        c = self.clients[i]
        self._track(c, self.h.sync(c.member_id, c.generation,
                                   {m: m.encode() for m in c.to_assign}, instance=c.instance))

    @rule()
    def everyone_syncs(self) -> None:
        """The usual path: followers sync, then the leaders hand out assignments."""
        for c in sorted(self.clients, key=lambda c: bool(c.to_assign)):
            if c.member_id:
                self.sync(self.clients.index(c))

    @rule(i=clients)
    def heartbeat(self, i: int) -> None:
        c = self.clients[i]
        self.h.heartbeat(c.member_id, c.generation, c.instance)

    @rule(i=clients)
    def commit(self, i: int) -> None:
        c = self.clients[i]
        self.h.commit(c.member_id, c.generation, c.instance)

    @rule(i=clients)
    def leave(self, i: int) -> None:
        c = self.clients[i]
        self.h.leave(MemberIdentity(c.member_id, c.instance))
        c.member_id = ""
        self._learn()

    @precondition(lambda self: any(c.instance for c in self.clients))
    @rule(i=st.integers(3, 4))
    def restart(self, i: int) -> None:
        """A crash: the client forgets its member id and does not leave."""
        self.clients[i].member_id = ""

    @rule(ms=st.integers(0, 1_200))
    def advance(self, ms: int) -> None:
        self.h.advance(ms)
        self._learn()

    @invariant()
    def coherent(self) -> None:
        now = self.h.now
        deadline = self.h.coordinator.next_deadline()
        assert deadline is None or deadline > now, "a due timer was not fired"
        for group in self.h.coordinator._groups.values():
            assert group.generation_id >= self.generations.get(group.group_id, 0)
            self.generations[group.group_id] = group.generation_id
            members = group.members
            assert (group.leader_id is None) == (not members)
            assert group.leader_id is None or group.leader_id in members
            assert group.static_members == {
                m.group_instance_id: m.member_id for m in members.values()
                if m.group_instance_id is not None}
            assert group.pending_sync <= members.keys()
            state = group.state
            if state is GroupState.EMPTY:
                assert not members and group.join_deadline_ms is None
            if state is GroupState.PREPARING_REBALANCE:
                assert deadline is not None, "a rebalance that nothing will finish"
            if state in (GroupState.COMPLETING_REBALANCE, GroupState.STABLE):
                assert members and group.protocol_name is not None
                assert all(group.protocol_name in dict(m.protocols) for m in members.values())
            if state is GroupState.STABLE:
                assert all(m.assignment is not None for m in members.values())
            for m in members.values():
                assert m.join_waiter is None or state is GroupState.PREPARING_REBALANCE
                assert m.sync_waiter is None or state is GroupState.COMPLETING_REBALANCE

    def teardown(self) -> None:
        """Once every client goes quiet, sessions end and every request has had its answer."""
        self.h.advance(20 * REBALANCE)
        for waiter in self.owner:
            assert self.h.response(waiter) is not None, f"{waiter} never answered"
        assert {g.state for g in self.h.coordinator.list_groups()} <= {"Empty"}


GroupMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=60,
                                          deadline=None)
test_group_state_machine = GroupMachine.TestCase
