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
from collections.abc import Callable, Sequence
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
from ..broker.metrics import Traffic
from ..broker.snapshot import PartitionView, all_partitions, committed_offsets, topic_partitions
from ..errors import ErrorCode, KafkaError
from ..log import Partition
from ..partitioner import murmur2_partition
from ..records import Record, decode_batches, encode_batch

log = logging.getLogger("minikafka.console")

READ_BYTES = 256 * 1024  # per log read while paging; the broker's loop runs between reads
MAX_SCAN_BYTES = 8 * 1024 * 1024  # a search stops here and says where to go on
Json = dict[str, Any]
Decoder = Callable[[bytes | None], Json | None]  # a record value shown decoded, or None


# --- overview and live numbers --------------------------------------------------------------------


class RateMeter:
    """Per-second traffic between two looks at the broker's totals (one per live stream)."""

    def __init__(self, ctx: BrokerContext) -> None:
        self._metrics = ctx.metrics
        self._last = (time.monotonic(), self._metrics.traffic())

    def rates(self) -> Json:
        now, traffic = time.monotonic(), self._metrics.traffic()
        then, before = self._last
        self._last = (now, traffic)
        elapsed = max(now - then, 1e-3)
        return {name: (new - old) / elapsed
                for name, new, old in zip(Traffic._fields, traffic, before, strict=True)}


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


def live(ctx: BrokerContext, meter: RateMeter) -> Json:
    """One tick of the live stream: the overview, rates, and the topic and group lists."""
    topics = all_partitions(ctx.log)
    return {**overview(ctx, topics), "rates": meter.rates(),
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


# --- records --------------------------------------------------------------------------------------


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="backslashreplace")


def _record_json(record: Record, decode: Decoder | None) -> Json:
    shown: Json = {"offset": record.offset, "timestamp": record.timestamp,
                   "key": _text(record.key), "value": _text(record.value),
                   "size": len(record.value or b""),
                   "headers": [[name, _text(value)] for name, value in record.headers]}
    if decode is not None:
        shown["schema"] = decode(record.value)
    return shown


def _matches(record: Json, needle: str) -> bool:
    return any(needle in (record[field] or "").lower() for field in ("key", "value"))


def _start_offset(partition: Partition, start: str, value: int | None, limit: int) -> int:
    first, end = partition.log_start_offset, partition.high_watermark
    if start == "end":
        return max(first, end - limit)
    if start == "timestamp":
        found = partition.offset_for_timestamp(value or 0)
        return end if found is None else found[0]
    if start == "offset":
        return min(max(value or 0, first), end)
    return first  # "beginning"


async def read_records(ctx: BrokerContext, topic: str, index: int, *, start: str = "beginning",
                       value: int | None = None, limit: int = 50, query: str = "",
                       decode: Decoder | None = None) -> Json:
    """Up to `limit` records from a start point (beginning, end, an offset or a timestamp),
    those whose key or value contains `query` when one is given (case-insensitive). A search
    reads at most MAX_SCAN_BYTES; `next_offset` says where the next page starts either way.
    Decoding is slow Python, so the broker's other work runs between chunks. `decode` gives
    each record's `schema`: its value decoded with a registered schema, or None. The user needs
    READ on the topic, as a consumer does."""
    authorize(ctx, AclOperation.READ, ResourceType.TOPIC, topic)
    partition = ctx.log.partition(topic, index)
    end = partition.high_watermark
    position = _start_offset(partition, start, value, limit)
    first_position = position
    needle = query.lower()
    found: list[Json] = []
    scanned = 0
    while position < end and len(found) < limit and scanned < MAX_SCAN_BYTES:
        if scanned:
            await asyncio.sleep(0)
        data = partition.read_batches(position, READ_BYTES)
        if not data:
            break
        scanned += len(data)
        for batch in decode_batches(data):
            for record in batch.records:
                if record.offset < position:
                    continue  # before the start, in the batch that contains it
                position = record.offset + 1
                shown = _record_json(record, decode)
                if not needle or _matches(shown, needle):
                    found.append(shown)
                    if len(found) == limit:
                        break
            else:
                position = max(position, batch.header.next_offset)
                continue
            break
    return {"topic": topic, "partition": index, "start_offset": partition.log_start_offset,
            "end_offset": end, "from_offset": first_position, "next_offset": position,
            "records": found}


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
            "offsets": rows, "lag": sum(c.lag for c in offsets)}


async def reset_offsets(ctx: BrokerContext, group: str, topic: str, to: str,
                        value: int | None = None) -> Json:
    """Reset the group's offsets on `topic` (see `ops.reset_offsets`); the group as now."""
    await ops.reset_offsets(ctx, group, topic, to, value)
    return describe_group(ctx, group)


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
