"""The group APIs over the raw protocol: version differences and bad input (strangers, stale
generations, groups that do not exist), each with Kafka's error code."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any

import pytest
from kafka.protocol.admin.groups import (
    DeleteGroupsRequest,
    DescribeGroupsRequest,
    ListGroupsRequest,
)
from kafka.protocol.consumer.group import (
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    OffsetCommitRequest,
    OffsetDeleteRequest,
    OffsetFetchRequest,
    SyncGroupRequest,
)
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest

from minikafka.errors import ErrorCode

from .conftest import InProcessBroker, RawClient, create_topic
from .members import wait_until

SESSION_MS = 10_000


def join(raw: RawClient, group: str, version: int = 5, member_id: str = "",
         instance_id: str | None = None) -> Any:
    cls = JoinGroupRequest[version]
    return raw.request(cls(
        group_id=group, session_timeout_ms=SESSION_MS, rebalance_timeout_ms=SESSION_MS,
        member_id=member_id, group_instance_id=instance_id, protocol_type="consumer",
        protocols=[cls.JoinGroupRequestProtocol(name="range", metadata=b"subscription")]))


def sync(raw: RawClient, group: str, generation: int, member_id: str,
         assignment: bytes = b"", version: int = 3) -> Any:
    cls = SyncGroupRequest[version]
    return raw.request(cls(group_id=group, generation_id=generation, member_id=member_id,
                           assignments=[cls.SyncGroupRequestAssignment(
                               member_id=member_id, assignment=assignment)]))


def join_alone(raw: RawClient, group: str) -> tuple[str, int]:
    """Become the only member (and leader) of `group`; (member id, generation)."""
    joined = join(raw, group, version=3)
    assert joined.error_code == 0 and joined.leader == joined.member_id
    synced = sync(raw, group, joined.generation_id, joined.member_id, b"my-assignment")
    assert (synced.error_code, synced.assignment) == (0, b"my-assignment")
    return joined.member_id, joined.generation_id


def delete_offset(raw: RawClient, group: str, topic: str) -> Any:
    """OffsetDelete of the group's offset for partition 0 of `topic`; the answer."""
    cls = OffsetDeleteRequest[0]
    return raw.request(cls(group_id=group, topics=[cls.OffsetDeleteRequestTopic(
        name=topic, partitions=[cls.OffsetDeleteRequestTopic.OffsetDeleteRequestPartition(
            partition_index=0)])]))


def commit(raw: RawClient, group: str, topic: str, offset: int, *, member_id: str = "",
           generation: int = -1, version: int = 8, metadata: str | None = "m",
           partitions: tuple[int, ...] = (0, 1)) -> list[int]:
    """Error codes, one per partition."""
    cls = OffsetCommitRequest[version]
    topic_cls = cls.OffsetCommitRequestTopic
    response = raw.request(cls(
        group_id=group, generation_id_or_member_epoch=generation, member_id=member_id,
        topics=[topic_cls(name=topic, partitions=[
            topic_cls.OffsetCommitRequestPartition(
                partition_index=p, committed_offset=offset, committed_leader_epoch=0,
                committed_metadata=metadata) for p in partitions])]))
    return [p.error_code for t in response.topics for p in t.partitions]


def fetch(raw: RawClient, group: str, topic: str | None, version: int = 7) -> dict[int, Any]:
    """partition -> response partition (a null topic asks for every committed one)."""
    cls = OffsetFetchRequest[version]
    topics = None if topic is None else [
        cls.OffsetFetchRequestTopic(name=topic, partition_indexes=[0, 1])]
    response = raw.request(cls(group_id=group, topics=topics))
    if version >= 2:
        assert response.error_code == 0
    return {p.partition_index: p for t in response.topics for p in t.partitions}


@pytest.fixture
def two_partitions(broker: InProcessBroker, topic: str) -> str:
    create_topic(broker.bootstrap, topic, 2)
    return topic


def test_member_id_required_only_from_join_group_v4(raw: RawClient, topic: str) -> None:
    for version in (0, 1, 3):  # kafka-go joins with v1/v2: MEMBER_ID_REQUIRED would loop it
        old = join(raw, f"{topic}-v{version}", version=version)
        assert old.error_code == 0 and old.member_id == old.leader
    first = join(raw, topic + "-v4", version=4)
    assert first.error_code == ErrorCode.MEMBER_ID_REQUIRED and first.member_id
    again = join(raw, topic + "-v4", version=4, member_id=first.member_id)
    assert (again.error_code, again.member_id) == (0, first.member_id)
    static = join(raw, topic + "-static", version=5, instance_id="i-1")
    assert static.error_code == 0 and static.members[0].group_instance_id == "i-1"


def test_commits_from_strangers_and_stale_generations(raw: RawClient, two_partitions: str
                                                      ) -> None:
    group = topic = two_partitions
    member, generation = join_alone(raw, group)
    assert commit(raw, group, topic, 5, member_id="stranger", generation=generation) == [
        ErrorCode.UNKNOWN_MEMBER_ID] * 2
    for stale in (generation - 1, generation + 1):
        assert commit(raw, group, topic, 6, member_id=member, generation=stale) == [
            ErrorCode.ILLEGAL_GENERATION] * 2
    # A "simple" commit (no member, no generation) may not interfere with a live group.
    assert commit(raw, group, topic, 7) == [ErrorCode.UNKNOWN_MEMBER_ID] * 2
    assert commit(raw, group, topic, 10, member_id=member, generation=generation) == [0, 0]
    assert commit(raw, group, "no-such-topic", 11, member_id=member, generation=generation) == [
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION] * 2
    assert commit(raw, group, topic, 12, member_id=member, generation=generation,
                  metadata="x" * 5000, partitions=(0,)) == [ErrorCode.OFFSET_METADATA_TOO_LARGE]
    assert {p: f.committed_offset for p, f in fetch(raw, group, topic).items()} == {0: 10, 1: 10}


def test_groups_that_do_not_exist(raw: RawClient, two_partitions: str) -> None:
    group, topic = "never-" + two_partitions, two_partitions
    unknown = ErrorCode.UNKNOWN_MEMBER_ID
    for version in range(5):
        beat = raw.request(HeartbeatRequest[version](group_id=group, generation_id=1,
                                                     member_id="m"))
        assert beat.error_code == unknown
    assert sync(raw, group, 1, "m").error_code == unknown
    assert join(raw, group, member_id="m").error_code == unknown
    assert raw.request(LeaveGroupRequest[0](group_id=group, member_id="m")).error_code == unknown
    left = raw.request(LeaveGroupRequest[3](group_id=group, members=[
        LeaveGroupRequest[3].MemberIdentity(member_id="m")]))
    assert (left.error_code, left.members[0].error_code) == (0, unknown)
    assert commit(raw, group, topic, 1, member_id="m", generation=3) == [
        ErrorCode.ILLEGAL_GENERATION] * 2
    described = raw.request(DescribeGroupsRequest[5](groups=[group]))
    assert (described.groups[0].error_code, described.groups[0].group_state) == (0, "Dead")
    deleted = raw.request(DeleteGroupsRequest[2](groups_names=[group]))
    assert deleted.results[0].error_code == ErrorCode.GROUP_ID_NOT_FOUND
    dropped = delete_offset(raw, group, topic)
    assert dropped.error_code == ErrorCode.GROUP_ID_NOT_FOUND
    for version in (1, 5):
        nothing = fetch(raw, group, topic, version)
        assert [(f.committed_offset, f.metadata) for f in nothing.values()] == [(-1, "")] * 2
    assert fetch(raw, group, topic, 5)[0].committed_leader_epoch == -1


def test_simple_commits_and_fetches_across_versions(raw: RawClient, two_partitions: str
                                                    ) -> None:
    group = topic = two_partitions
    assert commit(raw, group, topic, 3, version=0, metadata=None, partitions=(0,)) == [0]
    assert commit(raw, group, topic, 4, version=6, partitions=(1,)) == [0]
    old = fetch(raw, group, topic, version=1)
    assert [(old[p].committed_offset, old[p].metadata) for p in (0, 1)] == [(3, ""), (4, "m")]
    epochs = fetch(raw, group, None, version=5)  # null topics: everything committed
    assert [(epochs[p].committed_offset, epochs[p].committed_leader_epoch) for p in (0, 1)] == [
        (3, -1), (4, 0)]  # v0 carries no epoch; v6 committed epoch 0

    cls = OffsetFetchRequest[8]
    both = raw.request(cls(groups=[
        cls.OffsetFetchRequestGroup(group_id=group, topics=None),
        cls.OffsetFetchRequestGroup(group_id="nobody-" + group, topics=[
            cls.OffsetFetchRequestGroup.OffsetFetchRequestTopics(name=topic,
                                                                 partition_indexes=[1])])]))
    found = {g.group_id: [(p.partition_index, p.committed_offset) for t in g.topics
                          for p in t.partitions] for g in both.groups}
    assert found == {group: [(0, 3), (1, 4)], "nobody-" + group: [(1, -1)]}

    # A simple commit creates an Empty group: listed, deletable (offsets and all).
    empty = raw.request(ListGroupsRequest[4](states_filter=["Empty"])).groups
    assert group in {g.group_id for g in empty}
    assert group not in {g.group_id for g in raw.request(
        ListGroupsRequest[4](states_filter=["Stable"])).groups}
    deleted = raw.request(DeleteGroupsRequest[0](groups_names=[group]))
    assert deleted.results[0].error_code == 0
    assert [f.committed_offset for f in fetch(raw, group, topic).values()] == [-1, -1]


def test_describe_leave_and_delete(raw: RawClient, two_partitions: str) -> None:
    group = topic = two_partitions
    member, generation = join_alone(raw, group)
    assert commit(raw, group, topic, 2, member_id=member, generation=generation) == [0, 0]
    described = raw.request(DescribeGroupsRequest[5](groups=[group],
                                                     include_authorized_operations=True))
    found = described.groups[0]
    assert (found.group_state, found.protocol_type, found.protocol_data) == (
        "Stable", "consumer", "range")
    [m] = found.members
    assert (m.member_id, m.client_id, m.client_host, m.member_assignment) == (
        member, "raw", "/127.0.0.1", b"my-assignment")
    deleted = raw.request(DeleteGroupsRequest[1](groups_names=[group]))
    assert deleted.results[0].error_code == ErrorCode.NON_EMPTY_GROUP

    subscribed = delete_offset(raw, group, topic)
    assert subscribed.topics[0].partitions[0].error_code == ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC

    left = raw.request(LeaveGroupRequest[1](group_id=group, member_id=member))
    assert left.error_code == 0
    beat = raw.request(HeartbeatRequest[2](group_id=group, generation_id=generation,
                                           member_id=member))
    assert beat.error_code == ErrorCode.UNKNOWN_MEMBER_ID
    deleted = raw.request(DeleteGroupsRequest[1](groups_names=[group]))
    assert deleted.results[0].error_code == 0
    assert [f.committed_offset for f in fetch(raw, group, topic).values()] == [-1, -1]


def test_find_coordinator(broker: InProcessBroker, raw: RawClient) -> None:
    old = raw.request(FindCoordinatorRequest[0](key="any-group"))
    assert (old.error_code, old.node_id, old.port) == (0, 1, broker.port)  # node.id
    batched = raw.request(FindCoordinatorRequest[4](key_type=1, coordinator_keys=["t1", "t2"]))
    assert [(c.key, c.error_code, c.port) for c in batched.coordinators] == [
        ("t1", 0, broker.port), ("t2", 0, broker.port)]
    bad = raw.request(FindCoordinatorRequest[2](key="g", key_type=7))
    assert (bad.error_code, bad.node_id) == (ErrorCode.INVALID_REQUEST, -1)


def test_offsets_expire_only_once_the_group_has_no_members(own_broker: InProcessBroker,
                                                           topic: str) -> None:
    own_broker.extra = (*own_broker.extra, "--offsets-retention-minutes", "0",
                        "--offsets-retention-check-interval-ms", "100")
    own_broker.start()
    create_topic(own_broker.bootstrap, topic, 2)
    raw = RawClient(own_broker.bootstrap)
    try:
        member, generation = join_alone(raw, "live")
        assert commit(raw, "live", topic, 4, member_id=member, generation=generation) == [0, 0]
        assert commit(raw, "simple", topic, 4) == [0, 0]  # an Empty group from the start
        wait_until(lambda: not any(f.committed_offset >= 0
                                   for f in fetch(raw, "simple", topic).values()),
                   5, "the simple group's offsets expire")
        listed = {g.group_id for g in raw.request(ListGroupsRequest[0]()).groups}
        assert "simple" not in listed and "live" in listed  # an empty group goes with them
        assert [f.committed_offset for f in fetch(raw, "live", topic).values()] == [4, 4]
    finally:
        raw.close()


def test_shutdown_answers_a_join_it_holds(own_broker: InProcessBroker) -> None:
    """A JoinGroup waiting for a rebalance gets NOT_COORDINATOR (look again) when the broker
    stops, and does not hold the shutdown up."""
    own_broker.start()
    leader, waiting = RawClient(own_broker.bootstrap), RawClient(own_broker.bootstrap)
    try:
        join_alone(leader, "held")
        answers: list[Any] = []
        joining = threading.Thread(target=lambda: answers.append(join(waiting, "held", version=3)))
        joining.start()  # held until the leader rejoins, which it never does
        time.sleep(0.5)
        started = time.monotonic()
        assert own_broker.stop() == 0
        assert time.monotonic() - started < 3
        joining.join(5)
        assert answers[0].error_code == ErrorCode.NOT_COORDINATOR
    finally:
        leader.close()
        waiting.close()


def test_a_join_whose_client_hangs_up_frees_its_connection_at_once(
        broker: InProcessBroker, raw: RawClient) -> None:
    """JoinGroups held for a rebalance end when their clients hang up, instead of holding each
    connection and its descriptor until the rebalance times out."""
    join_alone(raw, "abandoned")
    baseline = len(os.listdir("/proc/self/fd"))
    cls = JoinGroupRequest[3]
    request = cls(group_id="abandoned", session_timeout_ms=SESSION_MS,
                  rebalance_timeout_ms=SESSION_MS, member_id="", protocol_type="consumer",
                  protocols=[cls.JoinGroupRequestProtocol(name="range", metadata=b"s")])
    request.with_header(correlation_id=1, client_id="raw")
    frame = request.encode(header=True, framed=True)
    sockets = [socket.create_connection(("127.0.0.1", broker.port)) for _ in range(20)]
    for sock in sockets:
        sock.sendall(frame)  # held until the leader rejoins, which it never does
    wait_until(lambda: len(os.listdir("/proc/self/fd")) >= baseline + 40, 5, "joins held")
    time.sleep(0.3)
    for sock in sockets:
        sock.close()
    wait_until(lambda: len(os.listdir("/proc/self/fd")) <= baseline + 2, 2, "descriptors freed")
