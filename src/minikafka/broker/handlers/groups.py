"""Consumer groups: FindCoordinator (10), JoinGroup (11), Heartbeat (12), LeaveGroup (13),
SyncGroup (14), DescribeGroups (15), ListGroups (16), DeleteGroups (42), OffsetCommit (8),
OffsetFetch (9), OffsetDelete (47).

The protocol itself is `broker/groups.py`, a pure state machine, run by `ctx.groups`
(`broker/group_service.py`); committing offsets is `ops.commit_offsets`. Each handler maps its
request version onto their dataclasses and back.

We are the only node, so we coordinate every group and every transactional id.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from kafka.protocol.api_key import ApiKey

from ...errors import ErrorCode
from ...log import OffsetAndMetadata
from ...log.offsets import TopicPartition
from ...protocol.codec import RequestHeader, response_class
from .. import ops
from ..acls import AclOperation, ResourceType
from ..context import (
    Api,
    BrokerContext,
    advertised_address,
    authorized,
    authorized_operations,
    client_host,
    refusal,
)
from ..groups import (
    HeartbeatRequest,
    HeartbeatResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
    MemberIdentity,
    OffsetCommitCheck,
    SyncGroupRequest,
    SyncGroupResponse,
)

# FindCoordinator's key types: group, transaction; and what a client must be allowed to DESCRIBE
KEY_TYPES = {0: ResourceType.GROUP, 1: ResourceType.TRANSACTIONAL_ID}
READ, DESCRIBE = AclOperation.READ, AclOperation.DESCRIBE
GROUP, TOPIC = ResourceType.GROUP, ResourceType.TOPIC


# --- FindCoordinator -----------------------------------------------------------------------------


async def handle_find_coordinator(ctx: BrokerContext, header: RequestHeader, request: Any
                                  ) -> Any:
    cls = response_class(ApiKey.FindCoordinator, header.api_version)
    host, port = advertised_address(ctx)

    def answer(key: str) -> dict[str, Any]:
        resource_type = KEY_TYPES.get(request.key_type)
        error = (refusal(ctx, DESCRIBE, resource_type, key) if resource_type
                 else ErrorCode.INVALID_REQUEST)
        message = None if error is ErrorCode.NONE else (
            error.name if resource_type else f"unknown key type {request.key_type}")
        found = error is ErrorCode.NONE
        return {"error_code": error, "error_message": message, "node_id": ctx.node_id if found
                else -1, "host": host if found else "", "port": port if found else -1}

    if header.api_version < 4:
        return cls(throttle_time_ms=0, **answer(request.key))
    return cls(throttle_time_ms=0, coordinators=[cls.Coordinator(key=key, **answer(key))
                                                 for key in request.coordinator_keys])


# --- JoinGroup, SyncGroup, Heartbeat, LeaveGroup -------------------------------------------------


async def handle_join_group(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    service = ctx.groups
    version = header.api_version
    refused = refusal(ctx, READ, GROUP, request.group_id)
    joined = JoinGroupResponse(refused, member_id=request.member_id) if refused else \
        await service.call(service.coordinator.join_group, JoinGroupRequest(
        group_id=request.group_id, member_id=request.member_id,
        protocol_type=request.protocol_type,
        protocols=[(p.name, p.metadata) for p in request.protocols],
        session_timeout_ms=request.session_timeout_ms, api_version=version,
        rebalance_timeout_ms=request.rebalance_timeout_ms,
        group_instance_id=request.group_instance_id, client_id=header.client_id or "",
        client_host=f"/{client_host.get()}"),
        JoinGroupResponse(ErrorCode.NOT_COORDINATOR, member_id=request.member_id))
    cls = response_class(ApiKey.JoinGroup, version)
    protocol_name = joined.protocol_name
    if protocol_name is None and version < 7:
        protocol_name = ""  # nullable only from v7
    return cls(
        throttle_time_ms=0, error_code=joined.error_code, generation_id=joined.generation_id,
        protocol_type=joined.protocol_type, protocol_name=protocol_name, leader=joined.leader,
        skip_assignment=joined.skip_assignment, member_id=joined.member_id,
        members=[cls.JoinGroupResponseMember(member_id=m.member_id,
                                             group_instance_id=m.group_instance_id,
                                             metadata=m.metadata) for m in joined.members])


async def handle_sync_group(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    service = ctx.groups
    refused = refusal(ctx, READ, GROUP, request.group_id)
    synced = SyncGroupResponse(refused) if refused else await service.call(
        service.coordinator.sync_group, SyncGroupRequest(
        group_id=request.group_id, generation_id=request.generation_id,
        member_id=request.member_id,
        assignments=[(a.member_id, a.assignment) for a in request.assignments],
        group_instance_id=request.group_instance_id, protocol_type=request.protocol_type,
        protocol_name=request.protocol_name),
        SyncGroupResponse(ErrorCode.NOT_COORDINATOR))
    cls = response_class(ApiKey.SyncGroup, header.api_version)
    return cls(throttle_time_ms=0, error_code=synced.error_code,
               protocol_type=synced.protocol_type, protocol_name=synced.protocol_name,
               assignment=synced.assignment)


async def handle_heartbeat(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    service = ctx.groups
    refused = refusal(ctx, READ, GROUP, request.group_id)
    beat = HeartbeatResponse(refused) if refused else await service.call(
        service.coordinator.heartbeat, HeartbeatRequest(
        group_id=request.group_id, generation_id=request.generation_id,
        member_id=request.member_id, group_instance_id=request.group_instance_id),
        HeartbeatResponse(ErrorCode.NOT_COORDINATOR))
    cls = response_class(ApiKey.Heartbeat, header.api_version)
    return cls(throttle_time_ms=0, error_code=beat.error_code)


async def handle_leave_group(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    service = ctx.groups
    batch = header.api_version >= 3  # v0-2 leave one member, named by the request itself
    members = ([MemberIdentity(m.member_id, m.group_instance_id) for m in request.members]
               if batch else [MemberIdentity(request.member_id)])
    refused = refusal(ctx, READ, GROUP, request.group_id)
    left = LeaveGroupResponse(refused) if refused else await service.call(
        service.coordinator.leave_group, LeaveGroupRequest(request.group_id, members),
        LeaveGroupResponse(ErrorCode.NOT_COORDINATOR))
    cls = response_class(ApiKey.LeaveGroup, header.api_version)
    if not batch:
        error = left.error_code or (left.members[0].error_code if left.members else 0)
        return cls(throttle_time_ms=0, error_code=error)
    return cls(throttle_time_ms=0, error_code=left.error_code, members=[
        cls.MemberResponse(member_id=m.member_id, group_instance_id=m.group_instance_id,
                           error_code=m.error_code) for m in left.members])


# --- admin: ListGroups, DescribeGroups, DeleteGroups ----------------------------------------------


async def handle_list_groups(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    states = request.states_filter if header.api_version >= 4 else ()
    cls = response_class(ApiKey.ListGroups, header.api_version)
    return cls(throttle_time_ms=0, error_code=0, groups=[
        cls.ListedGroup(group_id=g.group_id, protocol_type=g.protocol_type, group_state=g.state)
        for g in ctx.groups.coordinator.list_groups(states)
        if authorized(ctx, DESCRIBE, GROUP, g.group_id)])


async def handle_describe_groups(ctx: BrokerContext, header: RequestHeader, request: Any
                                 ) -> Any:
    """Groups the client may not DESCRIBE answer GROUP_AUTHORIZATION_FAILED, and nothing else."""
    cls = response_class(ApiKey.DescribeGroups, header.api_version)
    group_cls = cls.DescribedGroup
    allowed = [g for g in request.groups if authorized(ctx, DESCRIBE, GROUP, g)]
    described = {g.group_id: g for g in ctx.groups.coordinator.describe_groups(allowed)}

    def answer(name: str) -> Any:
        g = described.get(name)
        if g is None:
            return group_cls(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED, group_id=name,
                             group_state="", protocol_type="", protocol_data="",
                             authorized_operations=None, members=[])
        return group_cls(
            error_code=g.error_code, group_id=g.group_id, group_state=g.state,
            protocol_type=g.protocol_type, protocol_data=g.protocol,
            authorized_operations=authorized_operations(ctx, GROUP, g.group_id)
            if request.include_authorized_operations else None, members=[
                group_cls.DescribedGroupMember(
                    member_id=m.member_id, group_instance_id=m.group_instance_id,
                    client_id=m.client_id, client_host=m.client_host,
                    member_metadata=m.metadata, member_assignment=m.assignment)
                for m in g.members])

    return cls(throttle_time_ms=0, groups=[answer(name) for name in request.groups])


async def handle_delete_groups(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    results = ops.delete_groups(ctx, request.groups_names)
    cls = response_class(ApiKey.DeleteGroups, header.api_version)
    return cls(throttle_time_ms=0, results=[
        cls.DeletableGroupResult(group_id=group, error_code=error) for group, error in results])


# --- OffsetCommit, OffsetFetch, OffsetDelete ----------------------------------------------------


async def handle_offset_commit(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    check = OffsetCommitCheck(request.group_id, request.member_id,
                              request.generation_id_or_member_epoch, request.group_instance_id)
    offsets = {(topic.name, p.partition_index): OffsetAndMetadata(
                   p.committed_offset, p.committed_leader_epoch, p.committed_metadata or "",
                   max(p.commit_timestamp, 0))  # v1 may set it; 0: the store stamps it now
               for topic in request.topics for p in topic.partitions}
    errors = await ops.commit_offsets(ctx, check, offsets)
    cls = response_class(ApiKey.OffsetCommit, header.api_version)
    topic_cls = cls.OffsetCommitResponseTopic
    return cls(throttle_time_ms=0, topics=[
        topic_cls(name=t.name, partitions=[
            topic_cls.OffsetCommitResponsePartition(
                partition_index=p.partition_index, error_code=errors[(t.name, p.partition_index)])
            for p in t.partitions])
        for t in request.topics])


@dataclass(frozen=True, slots=True)
class _Fetched:
    partition: int
    offset: int
    leader_epoch: int
    metadata: str  # never null: old clients (Sarama) cannot read one
    error_code: ErrorCode = ErrorCode.NONE


def _fetch_offsets(ctx: BrokerContext, group: str, topics: Any,
                   unstable: Collection[TopicPartition] = ()) -> dict[str, list[_Fetched]]:
    """Committed offsets by topic: of the partitions asked for (-1 where none is committed),
    or every committed one when `topics` is null. `unstable` partitions (offsets pending in a
    transaction, when the client requires stable ones) answer UNSTABLE_OFFSET_COMMIT. Topics
    the client may not DESCRIBE are left out of "every one" and refused when asked for."""
    committed = ctx.log.offsets.fetch(group)
    asked = {t for t, _ in committed} if topics is None else {t.name for t in topics}
    refusals = {topic: refusal(ctx, DESCRIBE, TOPIC, topic) for topic in asked}
    if topics is None:
        wanted: Iterable[TopicPartition] = [tp for tp in sorted(committed)
                                            if not refusals[tp[0]]]
    else:
        wanted = [(t.name, p) for t in topics for p in t.partition_indexes]
    by_topic: dict[str, list[_Fetched]] = {}
    for topic, partition in wanted:
        found = committed.get((topic, partition))
        refused = refusals[topic]
        by_topic.setdefault(topic, []).append(
            _Fetched(partition, -1, -1, "", refused) if refused
            else _Fetched(partition, -1, -1, "", ErrorCode.UNSTABLE_OFFSET_COMMIT)
            if (topic, partition) in unstable
            else _Fetched(partition, found.offset, found.leader_epoch, found.metadata or "")
            if found else _Fetched(partition, -1, -1, ""))
    return by_topic


async def handle_offset_fetch(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    """v0-7 ask for one group, v8 for several; a null topic list means every committed one.
    With require_stable (v7+), partitions whose offsets a transaction holds pending answer
    UNSTABLE_OFFSET_COMMIT (the client retries), as Kafka does."""
    stable = header.api_version >= 7 and request.require_stable

    def unstable(group: str) -> set[TopicPartition]:
        return ctx.transactions.coordinator.unstable_offsets(group) if stable else set()

    cls = response_class(ApiKey.OffsetFetch, header.api_version)
    if header.api_version < 8:
        topic_cls = cls.OffsetFetchResponseTopic
        part_cls = topic_cls.OffsetFetchResponsePartition
        refused = refusal(ctx, DESCRIBE, GROUP, request.group_id)
        fetched = {} if refused else _fetch_offsets(ctx, request.group_id, request.topics,
                                                    unstable(request.group_id))
        return cls(throttle_time_ms=0, error_code=refused, topics=[
            topic_cls(name=topic, partitions=[
                part_cls(partition_index=f.partition, committed_offset=f.offset,
                         committed_leader_epoch=f.leader_epoch, metadata=f.metadata,
                         error_code=f.error_code) for f in parts])
            for topic, parts in fetched.items()])
    group_cls = cls.OffsetFetchResponseGroup
    topic_cls = group_cls.OffsetFetchResponseTopics
    part_cls = topic_cls.OffsetFetchResponsePartitions
    return cls(throttle_time_ms=0, groups=[
        group_cls(group_id=group.group_id, error_code=refused, topics=[
            topic_cls(name=topic, partitions=[
                part_cls(partition_index=f.partition, committed_offset=f.offset,
                         committed_leader_epoch=f.leader_epoch, metadata=f.metadata,
                         error_code=f.error_code) for f in parts])
            for topic, parts in ({} if refused else _fetch_offsets(
                ctx, group.group_id, group.topics, unstable(group.group_id))).items()])
        for group in request.groups
        for refused in [refusal(ctx, DESCRIBE, GROUP, group.group_id)]])


async def handle_offset_delete(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    cls = response_class(ApiKey.OffsetDelete, header.api_version)
    topic_cls = cls.OffsetDeleteResponseTopic
    group_error, errors = ops.delete_offsets(
        ctx, request.group_id, [(t.name, p.partition_index)
                                for t in request.topics for p in t.partitions])
    if group_error is not ErrorCode.NONE:
        return cls(error_code=group_error, throttle_time_ms=0, topics=[])
    return cls(error_code=0, throttle_time_ms=0, topics=[
        topic_cls(name=t.name, partitions=[
            topic_cls.OffsetDeleteResponsePartition(
                partition_index=p.partition_index, error_code=errors[(t.name, p.partition_index)])
            for p in t.partitions])
        for t in request.topics])


APIS = (
    Api(ApiKey.OffsetCommit, 0, 8, handle_offset_commit),
    Api(ApiKey.OffsetFetch, 0, 8, handle_offset_fetch),
    Api(ApiKey.FindCoordinator, 0, 4, handle_find_coordinator),
    Api(ApiKey.JoinGroup, 0, 9, handle_join_group),
    Api(ApiKey.Heartbeat, 0, 4, handle_heartbeat),
    Api(ApiKey.LeaveGroup, 0, 5, handle_leave_group),
    Api(ApiKey.SyncGroup, 0, 5, handle_sync_group),
    Api(ApiKey.DescribeGroups, 0, 5, handle_describe_groups),
    Api(ApiKey.ListGroups, 0, 4, handle_list_groups),
    Api(ApiKey.DeleteGroups, 0, 2, handle_delete_groups),
    Api(ApiKey.OffsetDelete, 0, 0, handle_offset_delete),
)
