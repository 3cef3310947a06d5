"""What the console shows and changes, over a running broker's `BrokerContext`.

Every change goes through the broker's service layer (`broker/ops.py`), the one the Kafka
handlers call: topics change as CreateTopics, DeleteTopics, CreatePartitions, AlterConfigs change
them, records are appended as Produce with acks=all appends them, offsets are reset as an
OffsetCommit commits them. Reading goes through `broker/snapshot.py`, as /metrics does. It all
runs in the broker's event loop, so it never races a handler. Failures raise `KafkaError`s.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment

from ..broker import ops
from ..broker.acls import CLUSTER_NAME, AclOperation, ResourceType
from ..broker.context import (
    BrokerContext,
    authorize,
    authorized,
    authorized_any,
    authorized_operations,
)
from ..broker.groups import CONSUMER_PROTOCOL_TYPE, GroupState
from ..broker.snapshot import PartitionView, all_partitions, committed_offsets, topic_partitions
from ..errors import ErrorCode, KafkaError
from ..log import Partition
from ..partitioner import murmur2_partition
from ..records import Record, decode_batches, encode_batch

log = logging.getLogger("minikafka.console")

Json = dict[str, Any]


# --- overview and live numbers --------------------------------------------------------------------


def overview(ctx: BrokerContext, topics: dict[str, list[PartitionView]] | None = None) -> Json:
    """The broker at a glance; `topics` saves reading the partitions again (from `live`)."""
    topics = all_partitions(ctx.log) if topics is None else topics
    views = [v for partitions in topics.values() for v in partitions]
    host, port = ctx.config.advertised
    return {
        "broker": f"{host}:{port}",
        "cluster_id": ctx.cluster_id,
        "node_id": ctx.node_id,
        "data_dir": str(ctx.log.data_dir),
        "flush": str(ctx.log.flush_policy),
        "started": ctx.metrics.started,
        "uptime_s": time.time() - ctx.metrics.started,
        "topics": len(topics),
        "partitions": len(views),
        "messages": sum(v.messages for v in views),
        "size": sum(v.size for v in views),
        "groups": len(_group_ids(ctx)),
        "open_transactions": len(list_transactions(ctx)),
        "connections": ctx.metrics.open_connections(),
        "totals": ctx.metrics.traffic()._asdict(),
    }


def live(ctx: BrokerContext) -> Json:
    """One tick of the live stream: the overview, and the topic and group lists."""
    topics = all_partitions(ctx.log)
    return {**overview(ctx, topics),
            "topic_list": [_topic_json(ctx, t, views) for t, views in topics.items()],
            "group_list": list_groups(ctx), "transaction_list": list_transactions(ctx)}


# --- topics ---------------------------------------------------------------------------------------


def _partition_json(view: PartitionView) -> Json:
    return {"partition": view.partition, "start_offset": view.log_start_offset,
            "end_offset": view.high_watermark, "stable_offset": view.last_stable_offset,
            "messages": view.messages, "size": view.size, "segments": view.segments}


def _topic_json(ctx: BrokerContext, topic: str, views: list[PartitionView]) -> Json:
    config = ctx.log.topic_config(topic)
    defaults = config.defaults()
    return {
        "name": topic,
        "partitions": [_partition_json(v) for v in views],
        "messages": sum(v.messages for v in views),
        "size": sum(v.size for v in views),
        "retention_ms": config.retention_ms,
        "retention_bytes": config.retention_bytes,
        "configs": [{"name": name, "value": value, "default": name in defaults}
                    for name, value in config.as_kafka_configs().items()],
        # what the user may do to it, so that the page offers nothing else
        "allowed": sorted(AclOperation(op).name
                          for op in authorized_operations(ctx, ResourceType.TOPIC, topic)),
    }


def may_create_topics(ctx: BrokerContext) -> bool:
    """CREATE on the cluster, or on some topic (a name or a prefix)."""
    return authorized(ctx, AclOperation.CREATE, ResourceType.CLUSTER, CLUSTER_NAME) or \
        authorized_any(ctx, AclOperation.CREATE, ResourceType.TOPIC)


def list_topics(ctx: BrokerContext) -> list[Json]:
    return [_topic_json(ctx, topic, views) for topic, views in all_partitions(ctx.log).items()]


def describe_topic(ctx: BrokerContext, topic: str) -> Json:
    return _topic_json(ctx, topic, topic_partitions(ctx.log, topic))


async def create_topic(ctx: BrokerContext, name: str, partitions: int | None,
                       configs: dict[str, str]) -> Json:
    await ops.create_topic(ctx, name, partitions, configs)
    return describe_topic(ctx, name)


async def delete_topic(ctx: BrokerContext, name: str) -> None:
    await ops.delete_topic(ctx, name)


async def add_partitions(ctx: BrokerContext, name: str, total: int) -> Json:
    await ops.add_partitions(ctx, name, total)
    return describe_topic(ctx, name)


def alter_configs(ctx: BrokerContext, name: str, configs: dict[str, str]) -> Json:
    ops.alter_topic_configs(ctx, name, configs)
    return describe_topic(ctx, name)


def purge_topic(ctx: BrokerContext, name: str, index: int | None = None) -> Json:
    """DeleteRecords up to the high watermark, on one partition or (None) every one."""
    for view in topic_partitions(ctx.log, name):
        if index is None or view.partition == index:
            ops.delete_records(ctx, name, view.partition, -1)
    return describe_topic(ctx, name)


# --- records --------------------------------------------------------------------------------------


class BrokerReader:
    """A partition of this broker's log, read as `browse.PartitionReader` reads."""

    def __init__(self, partition: Partition, index: int) -> None:
        self._log = partition
        self.partition = index
        self.log_start_offset = partition.log_start_offset
        self.high_watermark = partition.high_watermark

    async def offset_for_timestamp(self, timestamp: int) -> int | None:
        found = self._log.offset_for_timestamp(timestamp)
        return None if found is None else found[0]

    async def read(self, position: int, max_bytes: int) -> tuple[list[Record], int, int]:
        """Decoding is slow Python, so the broker's other work runs between reads."""
        await asyncio.sleep(0)
        data = self._log.read_batches(position, max_bytes)
        records: list[Record] = []
        for batch in decode_batches(data):
            if not batch.header.is_control:
                records.extend(r for r in batch.records if r.offset >= position)
            position = max(position, batch.header.next_offset)
        return records, len(data), position


def readers(ctx: BrokerContext, topic: str, partition: int | None) -> list[BrokerReader]:
    """The topic's partitions, or (not None) one of them, for a user with READ on the topic
    (as a consumer needs)."""
    authorize(ctx, AclOperation.READ, ResourceType.TOPIC, topic)
    if partition is not None:
        return [BrokerReader(ctx.log.partition(topic, partition), partition)]
    return [BrokerReader(ctx.log.partition(topic, v.partition), v.partition)
            for v in topic_partitions(ctx.log, topic)]


async def produce(ctx: BrokerContext, topic: str, index: int | None, key: str | None,
                  value: str | None, headers: Sequence[tuple[str, str]]) -> Json:
    """Append one record as Produce with acks=all would: the partition is the key's (murmur2,
    as Java clients pick it) or a random one, and under flush=always we wait for the fsync."""
    partitions = ctx.log.topic_config(topic).partitions
    key_bytes = None if key is None else key.encode()
    if index is None:
        index = (murmur2_partition(key_bytes, partitions) if key_bytes
                 else random.randrange(partitions))
    batch = encode_batch([(key_bytes, None if value is None else value.encode(),
                           [(name, text.encode()) for name, text in headers], None)])
    info = await ops.produce(ctx, topic, index, batch)
    return {"topic": topic, "partition": index, "offset": info.base_offset}


# --- consumer groups ------------------------------------------------------------------------------


def _group_ids(ctx: BrokerContext) -> list[str]:
    known = {g.group_id for g in ctx.groups.coordinator.list_groups()}
    return sorted(known | set(ctx.log.offsets.groups()))


@dataclass(frozen=True, slots=True)
class _Member:
    member_id: str
    instance_id: str | None
    client_id: str
    client_host: str
    assignment: list[tuple[str, list[int]]]


def _assignment(protocol_type: str, data: bytes) -> list[tuple[str, list[int]]]:
    """A consumer's assigned partitions (ConsumerProtocolAssignment); other protocols' bytes
    mean nothing to us."""
    if protocol_type != CONSUMER_PROTOCOL_TYPE or not data:
        return []
    try:
        decoded = ConsumerProtocolAssignment.decode(data)  # its "header" is the version
    except Exception:  # a client's bytes: show nothing rather than fail the page
        return []
    return [(topic, sorted(partitions)) for topic, partitions in decoded.assigned_partitions]


def _described(ctx: BrokerContext, group: str) -> tuple[str, str, list[_Member]]:
    """(state, protocol, members) of a group as the coordinator describes it: Dead when it
    knows no such group (groups with committed offsets are known from the start)."""
    described = ctx.groups.coordinator.describe_groups([group])[0]
    members = [_Member(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                       _assignment(described.protocol_type, m.assignment))
               for m in described.members]
    return described.state, described.protocol, members


def list_groups(ctx: BrokerContext) -> list[Json]:
    groups = []
    for group in _group_ids(ctx):
        state, _protocol, members = _described(ctx, group)
        offsets = committed_offsets(ctx.log, group)
        groups.append({"group": group, "state": state, "members": len(members),
                       "topics": sorted({c.topic for c in offsets}),
                       "lag": sum(c.lag for c in offsets)})
    return groups


def describe_group(ctx: BrokerContext, group: str) -> Json:
    state, protocol, members = _described(ctx, group)
    offsets = committed_offsets(ctx.log, group)
    if state == GroupState.DEAD and not offsets:
        raise KafkaError(f"consumer group {group!r} does not exist", ErrorCode.GROUP_ID_NOT_FOUND)
    owners = {(topic, p): m.client_id or m.member_id
              for m in members for topic, partitions in m.assignment for p in partitions}
    rows = [{"topic": c.topic, "partition": c.partition, "committed": c.committed,
             "end_offset": c.high_watermark, "lag": c.lag,
             "owner": owners.get((c.topic, c.partition))} for c in offsets]
    committed = {(c.topic, c.partition) for c in offsets}
    for (topic, p), owner in sorted(owners.items()):
        if (topic, p) in committed or not ctx.log.exists(topic):
            continue
        rows.append({"topic": topic, "partition": p, "committed": None,
                     "end_offset": ctx.log.partition(topic, p).high_watermark, "lag": None,
                     "owner": owner})
    return {"group": group, "state": state, "protocol": protocol,
            "members": [{"member_id": m.member_id, "instance_id": m.instance_id,
                         "client_id": m.client_id, "client_host": m.client_host,
                         "assignment": [{"topic": t, "partitions": ps} for t, ps in m.assignment]}
                        for m in members],
            "offsets": rows, "lag": sum(c.lag for c in offsets),
            # what the user may do to it, so that the page offers nothing else
            "allowed": sorted(AclOperation(op).name
                              for op in authorized_operations(ctx, ResourceType.GROUP, group))}


async def reset_offsets(ctx: BrokerContext, group: str, topic: str, to: str,
                        value: int | None = None) -> Json:
    """Reset the group's offsets on `topic` (see `ops.reset_offsets`); the group as now."""
    await ops.reset_offsets(ctx, group, topic, to, value)
    return describe_group(ctx, group)


def delete_group(ctx: BrokerContext, group: str) -> None:
    """DeleteGroups for one group: refused while it has members (NON_EMPTY_GROUP)."""
    ((_, error),) = ops.delete_groups(ctx, [group])
    if error is ErrorCode.NON_EMPTY_GROUP:
        raise KafkaError(f"consumer group {group!r} has active members; stop its consumers "
                         "before deleting it", error)
    if error is not ErrorCode.NONE:
        raise KafkaError(f"consumer group {group!r} cannot be deleted: {error.name}", error)


# --- transactions ---------------------------------------------------------------------------------


def list_transactions(ctx: BrokerContext) -> list[Json]:
    """The open transactions (Ongoing, or ending: their markers not all written yet), oldest
    first, with how long each has run and the partitions whose LSO it holds back."""
    now = ctx.transactions.clock()
    open_ = [t for t in ctx.transactions.coordinator.transactions() if not t.state.complete]
    return [{"transactional_id": t.transactional_id, "producer_id": t.producer_id,
             "producer_epoch": t.producer_epoch, "state": t.state, "timeout_ms": t.timeout_ms,
             "running_ms": max(now - t.start_ms, 0),
             "partitions": [f"{topic}-{index}" for topic, index in sorted(t.partitions)]}
            for t in sorted(open_, key=lambda t: t.start_ms)]
