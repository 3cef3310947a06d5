"""Consumer groups: FindCoordinator (10), JoinGroup (11), Heartbeat (12), LeaveGroup (13),
SyncGroup (14), DescribeGroups (15), ListGroups (16), DeleteGroups (42), OffsetCommit (8),
OffsetFetch (9), OffsetDelete (47).

The protocol itself is `broker/groups.py`, a pure state machine; this module is its I/O. Each
handler maps its request version onto the machine's dataclasses and awaits an asyncio future the
machine answers when it decides: at once, or (JoinGroup, SyncGroup) when the rebalance moves on.
One loop timer follows the machine's next deadline (sessions, rebalance and sync timeouts, the
initial delay); the machine's clock is the loop's monotonic clock. Committed offsets go to the
log's offsets store, so they survive restarts; membership does not (clients rejoin).

We are the only node, so we coordinate every group and every transactional id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from kafka.protocol.api_key import ApiKey

from ...errors import ErrorCode, KafkaError
from ...log import OffsetAndMetadata, OffsetStore
from ...protocol.codec import RequestHeader, response_class
from ..config import BrokerConfig
from ..context import Api, BrokerContext, client_host
from ..groups import (
    Completion,
    GroupConfig,
    GroupCoordinator,
    GroupState,
    HeartbeatRequest,
    HeartbeatResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
    MemberIdentity,
    OffsetCommitCheck,
    Response,
    SyncGroupRequest,
    SyncGroupResponse,
)

log = logging.getLogger("minikafka.broker")

EXTENSION = "groups"
KEY_TYPES = {0, 1}  # FindCoordinator: group, transaction
MAX_METADATA_BYTES = 4096  # Kafka's offset.metadata.max.bytes
GROUP_OPERATIONS = {3, 6, 8}  # everything is allowed: read, delete, describe (AclOperation codes)
TopicPartition = tuple[str, int]
R = TypeVar("R", bound=Response)
Q = TypeVar("Q")


def _wall_ms() -> int:
    return int(time.time() * 1000)


class GroupService:
    """The coordinator's runtime: futures for its waiters, its timer, offsets and their expiry."""

    def __init__(self, config: BrokerConfig, offsets: OffsetStore) -> None:
        self.coordinator = GroupCoordinator(GroupConfig(
            initial_rebalance_delay_ms=config.group_initial_rebalance_delay_ms,
            min_session_timeout_ms=config.group_min_session_timeout_ms,
            max_session_timeout_ms=config.group_max_session_timeout_ms))
        self.offsets = offsets
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: int | None = None
        self._held: dict[asyncio.Future[Response], Response] = {}  # -> answer if we stop
        self._stopping = False
        # Groups known from committed offsets are listed, described and deletable after a
        # restart; their offsets' retention counts from now, as we cannot tell when they last
        # had members.
        started = _wall_ms()
        self._active_at: dict[str, int] = {}  # group -> wall time it was last seen with members
        for group in offsets.groups():
            self.coordinator.load_group(group)
            self._active_at[group] = started
        self._expiry = self._loop.create_task(self._expire_periodically(
            config.offsets_retention_minutes * 60_000,
            config.offsets_retention_check_interval_ms / 1000))

    def now_ms(self) -> int:
        return int(self._loop.time() * 1000)

    async def call(self, method: Callable[[Q, object, int], list[Completion]], request: Q,
                   if_stopping: R) -> R:
        """Run one coordinator call and wait for its answer; `if_stopping` answers it instead
        when the broker shuts down first (JoinGroup and SyncGroup can wait a long time)."""
        waiter: asyncio.Future[Response] = self._loop.create_future()
        self._held[waiter] = if_stopping
        try:
            self._deliver(method(request, waiter, self.now_ms()))
            if self._stopping and not waiter.done():
                waiter.set_result(if_stopping)
            return cast(R, await waiter)
        finally:
            del self._held[waiter]

    def _deliver(self, completions: Iterable[Completion]) -> None:
        for waiter, response in completions:
            future = cast(asyncio.Future[Response], waiter)
            if not future.done():  # its request's connection may be gone
                future.set_result(response)
        self._schedule()

    def _schedule(self) -> None:
        deadline = self.coordinator.next_deadline()
        if deadline == self._timer_deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_deadline = deadline
        # +1 ms: the loop may wake a little early, and `tick` rounds its clock down.
        self._timer = (None if deadline is None
                       else self._loop.call_at((deadline + 1) / 1000, self._on_timer))

    def _on_timer(self) -> None:
        self._timer = self._timer_deadline = None
        self._deliver(self.coordinator.tick(self.now_ms()))

    # -- offsets --

    def forget(self, group: str) -> None:
        """A deleted group: its committed offsets go too."""
        self.offsets.delete(group)
        self._active_at.pop(group, None)

    async def _expire_periodically(self, retention_ms: int, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.expire_offsets(_wall_ms() - retention_ms)
            except OSError:
                log.exception("expiring committed offsets failed; will retry")

    def expire_offsets(self, cutoff_ms: int) -> None:
        """Kafka's rule (KIP-211): a group with members keeps its offsets; once it has none, an
        offset expires when both its commit and the group's last member are older than the
        retention. A group left with neither members nor offsets is removed."""
        now = _wall_ms()
        states = {group.group_id: group.state for group in self.coordinator.list_groups()}
        for group, state in states.items():
            if state != GroupState.EMPTY:
                self._active_at[group] = now
        for group in set(states) | set(self.offsets.groups()):
            if states.get(group, GroupState.EMPTY) != GroupState.EMPTY:
                continue
            since = self._active_at.get(group, 0)
            committed = self.offsets.fetch(group)
            expired = [tp for tp, o in committed.items() if max(o.commit_timestamp, since)
                       < cutoff_ms]
            if expired:
                log.info("group %s: %d committed offset(s) expired", group, len(expired))
                self.offsets.delete(group, expired)
            if len(expired) == len(committed):
                self.coordinator.delete_groups([group])
                self._active_at.pop(group, None)

    # -- lifecycle --

    def stop_waiting(self) -> None:
        """Shutdown begins: answer every held JoinGroup/SyncGroup (NOT_COORDINATOR), so that
        their clients look for the coordinator again instead of holding the shutdown up."""
        self._stopping = True
        for waiter, answer in self._held.items():
            if not waiter.done():
                waiter.set_result(answer)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._expiry.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._expiry


def startup(ctx: BrokerContext) -> None:
    ctx.extensions[EXTENSION] = GroupService(ctx.config, ctx.log.offsets)


def stopping(ctx: BrokerContext) -> None:
    _service(ctx).stop_waiting()


async def shutdown(ctx: BrokerContext) -> None:
    await _service(ctx).close()


def _service(ctx: BrokerContext) -> GroupService:
    return cast(GroupService, ctx.extensions[EXTENSION])


# --- FindCoordinator -----------------------------------------------------------------------------


async def handle_find_coordinator(ctx: BrokerContext, header: RequestHeader, request: Any
                                  ) -> Any:
    cls = response_class(ApiKey.FindCoordinator, header.api_version)
    host, port = ctx.config.advertised
    error = ErrorCode.NONE if request.key_type in KEY_TYPES else ErrorCode.INVALID_REQUEST
    message = None if error is ErrorCode.NONE else f"unknown key type {request.key_type}"
    found = error is ErrorCode.NONE
    answer = {"error_code": error, "error_message": message, "node_id": ctx.node_id if found
              else -1, "host": host if found else "", "port": port if found else -1}
    if header.api_version < 4:
        return cls(throttle_time_ms=0, **answer)
    return cls(throttle_time_ms=0, coordinators=[cls.Coordinator(key=key, **answer)
                                                 for key in request.coordinator_keys])


# --- JoinGroup, SyncGroup, Heartbeat, LeaveGroup -------------------------------------------------


async def handle_join_group(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    service = _service(ctx)
    version = header.api_version
    joined = await service.call(service.coordinator.join_group, JoinGroupRequest(
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
    service = _service(ctx)
    synced = await service.call(service.coordinator.sync_group, SyncGroupRequest(
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
    service = _service(ctx)
    beat = await service.call(service.coordinator.heartbeat, HeartbeatRequest(
        group_id=request.group_id, generation_id=request.generation_id,
        member_id=request.member_id, group_instance_id=request.group_instance_id),
        HeartbeatResponse(ErrorCode.NOT_COORDINATOR))
    cls = response_class(ApiKey.Heartbeat, header.api_version)
    return cls(throttle_time_ms=0, error_code=beat.error_code)


async def handle_leave_group(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    service = _service(ctx)
    batch = header.api_version >= 3  # v0-2 leave one member, named by the request itself
    members = ([MemberIdentity(m.member_id, m.group_instance_id) for m in request.members]
               if batch else [MemberIdentity(request.member_id)])
    left = await service.call(service.coordinator.leave_group,
                              LeaveGroupRequest(request.group_id, members),
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
        for g in _service(ctx).coordinator.list_groups(states)])


async def handle_describe_groups(ctx: BrokerContext, header: RequestHeader, request: Any
                                 ) -> Any:
    cls = response_class(ApiKey.DescribeGroups, header.api_version)
    group_cls = cls.DescribedGroup
    operations = GROUP_OPERATIONS if request.include_authorized_operations else None
    return cls(throttle_time_ms=0, groups=[
        group_cls(error_code=g.error_code, group_id=g.group_id, group_state=g.state,
                  protocol_type=g.protocol_type, protocol_data=g.protocol,
                  authorized_operations=operations, members=[
                      group_cls.DescribedGroupMember(
                          member_id=m.member_id, group_instance_id=m.group_instance_id,
                          client_id=m.client_id, client_host=m.client_host,
                          member_metadata=m.metadata, member_assignment=m.assignment)
                      for m in g.members])
        for g in _service(ctx).coordinator.describe_groups(request.groups)])


async def handle_delete_groups(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    service = _service(ctx)
    results = service.coordinator.delete_groups(request.groups_names)
    for group, error in results:
        if error is ErrorCode.NONE:
            service.forget(group)
    cls = response_class(ApiKey.DeleteGroups, header.api_version)
    return cls(throttle_time_ms=0, results=[
        cls.DeletableGroupResult(group_id=group, error_code=error) for group, error in results])


# --- OffsetCommit, OffsetFetch, OffsetDelete ----------------------------------------------------


def _partition_error(ctx: BrokerContext, topic: str, index: int) -> ErrorCode:
    """Offsets are kept only for partitions that exist (Kafka checks its metadata too)."""
    try:
        ctx.partition(topic, index)
    except KafkaError as exc:
        return ErrorCode(exc.code)
    return ErrorCode.NONE


async def handle_offset_commit(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    """The group decides first (all partitions share its error); then each partition is checked
    and the valid ones are stored together, in one durable write."""
    service = _service(ctx)
    version = header.api_version
    if not request.group_id:
        group_error = ErrorCode.INVALID_GROUP_ID
    else:
        group_error = await service.call(service.coordinator.validate_offset_commit,
                                         OffsetCommitCheck(
                                             request.group_id, request.member_id,
                                             request.generation_id_or_member_epoch,
                                             request.group_instance_id),
                                         ErrorCode.NOT_COORDINATOR)
    errors: dict[TopicPartition, ErrorCode] = {}
    accepted: dict[TopicPartition, OffsetAndMetadata] = {}
    for topic in request.topics:
        for p in topic.partitions:
            tp = (topic.name, p.partition_index)
            metadata = p.committed_metadata or ""
            error = group_error or _partition_error(ctx, *tp)
            if error is ErrorCode.NONE and len(metadata.encode()) > MAX_METADATA_BYTES:
                error = ErrorCode.OFFSET_METADATA_TOO_LARGE
            if error is ErrorCode.NONE:
                accepted[tp] = OffsetAndMetadata(
                    p.committed_offset, p.committed_leader_epoch, metadata,
                    max(p.commit_timestamp, 0))  # v1 may set it; 0: the store stamps it now
            errors[tp] = error
    service.offsets.commit(request.group_id, accepted)
    if accepted and ctx.log.flush_policy.mode == "always":
        await ctx.commits.sync(service.offsets)  # one fsync shared by concurrent commits
    cls = response_class(ApiKey.OffsetCommit, version)
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


def _fetch_offsets(offsets: OffsetStore, group: str, topics: Any
                   ) -> dict[str, list[_Fetched]]:
    """Committed offsets by topic: of the partitions asked for (-1 where none is committed),
    or every committed one when `topics` is null."""
    committed = offsets.fetch(group)
    if topics is None:
        wanted: Iterable[TopicPartition] = sorted(committed)
    else:
        wanted = [(t.name, p) for t in topics for p in t.partition_indexes]
    by_topic: dict[str, list[_Fetched]] = {}
    for topic, partition in wanted:
        found = committed.get((topic, partition))
        by_topic.setdefault(topic, []).append(
            _Fetched(partition, found.offset, found.leader_epoch, found.metadata or "") if found
            else _Fetched(partition, -1, -1, ""))
    return by_topic


async def handle_offset_fetch(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    """v0-7 ask for one group, v8 for several; a null topic list means every committed one.
    Without transactions every offset is stable, so require_stable changes nothing."""
    offsets = _service(ctx).offsets
    cls = response_class(ApiKey.OffsetFetch, header.api_version)
    if header.api_version < 8:
        topic_cls = cls.OffsetFetchResponseTopic
        part_cls = topic_cls.OffsetFetchResponsePartition
        fetched = _fetch_offsets(offsets, request.group_id, request.topics)
        return cls(throttle_time_ms=0, error_code=0, topics=[
            topic_cls(name=topic, partitions=[
                part_cls(partition_index=f.partition, committed_offset=f.offset,
                         committed_leader_epoch=f.leader_epoch, metadata=f.metadata,
                         error_code=0) for f in parts])
            for topic, parts in fetched.items()])
    group_cls = cls.OffsetFetchResponseGroup
    topic_cls = group_cls.OffsetFetchResponseTopics
    part_cls = topic_cls.OffsetFetchResponsePartitions
    return cls(throttle_time_ms=0, groups=[
        group_cls(group_id=group.group_id, error_code=0, topics=[
            topic_cls(name=topic, partitions=[
                part_cls(partition_index=f.partition, committed_offset=f.offset,
                         committed_leader_epoch=f.leader_epoch, metadata=f.metadata,
                         error_code=0) for f in parts])
            for topic, parts in _fetch_offsets(offsets, group.group_id, group.topics).items()])
        for group in request.groups])


async def handle_offset_delete(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    service = _service(ctx)
    cls = response_class(ApiKey.OffsetDelete, header.api_version)
    topic_cls = cls.OffsetDeleteResponseTopic
    group_error, topic_errors = service.coordinator.offset_delete_errors(
        request.group_id, [t.name for t in request.topics])
    if group_error is not ErrorCode.NONE:
        return cls(error_code=group_error, throttle_time_ms=0, topics=[])
    errors = {(t.name, p.partition_index): (_partition_error(ctx, t.name, p.partition_index)
                                            or topic_errors[t.name])
              for t in request.topics for p in t.partitions}
    service.offsets.delete(request.group_id,
                           [tp for tp, error in errors.items() if error is ErrorCode.NONE])
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
