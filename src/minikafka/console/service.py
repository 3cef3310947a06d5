"""What the console shows and changes, over a running broker's `BrokerContext`.

Every change goes through the broker's service layer (`broker/ops.py`), the one the Kafka
handlers call: topics change as CreateTopics, DeleteTopics, CreatePartitions, AlterConfigs change
them, records are appended as Produce with acks=all appends them, offsets are reset as an
OffsetCommit commits them. Reading goes through `broker/snapshot.py`, as /metrics does. It all
runs in the broker's event loop, so it never races a handler. Failures raise `KafkaError`s.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import heapq
import itertools
import json
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment

from ..broker import ops
from ..broker.context import BrokerContext
from ..broker.groups import CONSUMER_PROTOCOL_TYPE, GroupState
from ..broker.metrics import Traffic
from ..broker.snapshot import PartitionView, all_partitions, committed_offsets, topic_partitions
from ..errors import ErrorCode, KafkaError
from ..log import Partition
from ..partitioner import murmur2_partition
from ..records import Record, decode_batches, encode_batch

log = logging.getLogger("minikafka.console")

READ_BYTES = 256 * 1024  # per log read while paging; the broker's loop runs between reads
MAX_SCAN_BYTES = 8 * 1024 * 1024  # a page's reading stops here and says where to go on
MAX_PAGE = 500  # records in a page
SHOWN_BYTES = 16 * 1024  # of a key or value in a page (the export gives them whole)
EXPORT_PAGE = 200
MAX_EXPORT_RECORDS = 100_000
MAX_EXPORT_BYTES = 256 * 1024 * 1024  # of log read by one export
LIVE_INTERVAL_SECONDS = 1.0
HISTORY_SECONDS = 300  # the rate history the broker keeps for fresh pages: 5 minutes
Json = dict[str, Any]


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


class RateHistory:
    """The broker's rates, sampled each second for the last HISTORY_SECONDS (a bounded ring),
    so that a page opened now draws the recent past rather than an empty chart."""

    def __init__(self, ctx: BrokerContext) -> None:
        self._ctx = ctx
        self._meter = RateMeter(ctx)
        self.samples: deque[Json] = deque(maxlen=HISTORY_SECONDS)

    async def run(self) -> None:
        """Sample until the broker stops (or the task is cancelled)."""
        while not self._ctx.stopping:
            await asyncio.sleep(LIVE_INTERVAL_SECONDS)
            self.samples.append({"time": int(time.time() * 1000), **self._meter.rates()})


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
    }


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


@dataclass(frozen=True, slots=True)
class Filters:
    """What a record must contain (case-insensitive; empty: anything): `text` in its key or
    value, `key` in its key, `value` in its value, `header` in one of its "name: value"."""

    text: str = ""
    key: str = ""
    value: str = ""
    header: str = ""

    def match(self, record: Record) -> bool:
        key, value = _text(record.key) or "", _text(record.value) or ""
        return (_has(self.text, key) or _has(self.text, value)) and _has(self.key, key) \
            and _has(self.value, value) and (not self.header or any(
                _has(self.header, f"{name}: {_text(data)}") for name, data in record.headers))


def _has(needle: str, text: str) -> bool:
    return needle.lower() in text.lower()


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="backslashreplace")


def _shown(data: bytes | None, cap: int | None) -> Json:
    """A key or value as text and base64 (for the hex and base64 views), cut at `cap` bytes."""
    if data is None:
        return {"text": None, "b64": None, "size": 0, "truncated": False}
    cut = data if cap is None else data[:cap]
    return {"text": _text(cut), "b64": base64.b64encode(cut).decode(), "size": len(data),
            "truncated": len(cut) < len(data)}


def _record_json(partition: int, record: Record, cap: int | None = SHOWN_BYTES) -> Json:
    """One record as the browser and the export show it (keys and values cut at `cap`)."""
    key, value = _shown(record.key, cap), _shown(record.value, cap)
    return {"partition": partition, "offset": record.offset, "timestamp": record.timestamp,
            "key": key["text"], "value": value["text"], "key_b64": key["b64"],
            "value_b64": value["b64"], "size": value["size"],
            "truncated": key["truncated"] or value["truncated"],
            "headers": [[name, _text(data)] for name, data in record.headers]}


class _Budget:
    """Bytes a request may still read from the log; `exhausted` once it ran out."""

    def __init__(self, total: int) -> None:
        self.left = total
        self.exhausted = False


async def _forward(partition: Partition, position: int, upper: int, want: int, filters: Filters,
                   budget: _Budget) -> tuple[list[Record], int]:
    """Up to `want` matching data records in [position, upper), oldest first, and where the next
    look starts. Decoding is slow Python, so the broker's other work runs between reads."""
    found: list[Record] = []
    while position < upper and len(found) < want:
        if budget.left <= 0:
            budget.exhausted = True
            break
        data = partition.read_batches(position, READ_BYTES)
        if not data:
            break
        budget.left -= len(data)
        for batch in decode_batches(data):
            for record in [] if batch.header.is_control else batch.records:
                if position <= record.offset < upper and filters.match(record):
                    found.append(record)
                    if len(found) == want:
                        return found, record.offset + 1
            position = max(position, min(batch.header.next_offset, upper))
        await asyncio.sleep(0)
    return found, position


async def _backward(partition: Partition, upper: int, want: int, filters: Filters,
                    budget: _Budget) -> tuple[list[Record], int]:
    """Up to `want` matching data records before `upper`, newest first, and the (exclusive)
    upper bound of the next look. Reads windows of offsets backwards, each twice as wide as the
    last while they find too little, but never wider than the budget left can read."""
    first = partition.log_start_offset
    found: list[Record] = []
    step, per_record = max(want, 16), 1
    while upper > first and len(found) < want and not budget.exhausted:
        step = max(1, min(step, budget.left // per_record // 2))
        lower = max(first, upper - step)
        before = budget.left
        window, reached = await _forward(partition, lower, upper, upper - lower, filters, budget)
        if reached < upper:  # the budget ran out inside the window: look again next page
            break
        per_record = max(1, (before - budget.left) // (upper - lower))
        window.reverse()
        found.extend(window[:want - len(found)])
        if len(found) == want:
            return found, found[-1].offset
        upper, step = lower, step * 2
    return found, upper


def _start(partition: Partition, start: str, value: int | None, newest: bool) -> int:
    """Where a partition's first page starts: for oldest first the first offset to read, for
    newest first the (exclusive) last one (from the beginning or the end: the end)."""
    first, end = partition.log_start_offset, partition.high_watermark
    if start == "end" or (start == "beginning" and newest):
        return end
    if start == "timestamp":
        found = partition.offset_for_timestamp((value or 0) + newest)  # newest: at or before it
        return end if found is None else found[0]
    if start == "offset":
        return min(max((value or 0) + newest, first), end)
    return first  # "beginning"


def parse_cursor(text: str) -> dict[int, int]:
    """"PARTITION:OFFSET,..." (a page's `cursor`) as a dict."""
    try:
        return {int(p): int(o) for p, o in (part.split(":") for part in text.split(",") if part)}
    except ValueError:
        raise KafkaError(f"bad cursor {text!r}", ErrorCode.INVALID_REQUEST) from None


async def browse(ctx: BrokerContext, topic: str, partition: int | None = None, *,
                 start: str = "beginning", value: int | None = None, limit: int = 50,
                 newest: bool = False, filters: Filters = Filters(),
                 cursor: dict[int, int] | None = None, cap: int | None = SHOWN_BYTES) -> Json:
    """A page of up to `limit` matching records of one partition or (None) all of them, merged
    by timestamp, oldest or newest first, from a start point (beginning, end, an offset or a
    timestamp) or from a previous page's `cursor`. One page reads at most MAX_SCAN_BYTES
    (`stopped` says when it ran out); `done` says no partition has more."""
    if start == "end" and not newest and not cursor:  # the last records, oldest first
        page = await browse(ctx, topic, partition, start="end", limit=limit, newest=True,
                            filters=filters, cap=cap)
        page["records"].reverse()
        page["cursor"] = ",".join(f"{p['partition']}:{p['end_offset']}"
                                  for p in page["partitions"])
        return {**page, "done": True}
    views = [v for v in topic_partitions(ctx.log, topic)
             if partition is None or v.partition == partition]
    if not views:
        raise KafkaError(f"unknown partition {topic}-{partition}",
                         ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    budget = _Budget(MAX_SCAN_BYTES)
    found: dict[int, list[Record]] = {}
    reached: dict[int, int] = {}
    for view in views:
        log = ctx.log.partition(topic, view.partition)
        at = (cursor or {}).get(view.partition)
        at = _start(log, start, value, newest) if at is None else at
        if newest:
            found[view.partition], reached[view.partition] = await _backward(
                log, at, limit, filters, budget)
        else:
            found[view.partition], reached[view.partition] = await _forward(
                log, at, view.high_watermark, limit, filters, budget)
    merged = list(itertools.islice(heapq.merge(
        *([(r.timestamp or 0, p, r) for r in records] for p, records in found.items()),
        key=lambda item: item[0], reverse=newest), limit))
    taken = collections.Counter(p for _, p, _ in merged)
    for p, records in found.items():
        if taken[p] < len(records):  # the next page starts at its first record not shown
            reached[p] = records[taken[p]].offset + newest
    ends = {v.partition: v.log_start_offset if newest else v.high_watermark for v in views}
    return {"topic": topic,
            "partitions": [{"partition": v.partition, "start_offset": v.log_start_offset,
                            "end_offset": v.high_watermark} for v in views],
            "records": [_record_json(p, r, cap) for _, p, r in merged],
            "cursor": ",".join(f"{p}:{o}" for p, o in sorted(reached.items())),
            "done": all(reached[p] == end for p, end in ends.items()),
            "scanned_bytes": MAX_SCAN_BYTES - budget.left,
            "stopped": "scan limit" if budget.exhausted else None}


async def export(ctx: BrokerContext, topic: str, partition: int | None, *, start: str,
                 value: int | None, newest: bool, filters: Filters) -> AsyncIterator[str]:
    """The matching records as JSON lines, whole, page after page: at most MAX_EXPORT_RECORDS
    and MAX_EXPORT_BYTES of log read; a last line says when a bound stopped it."""
    cursor, sent, scanned = None, 0, 0
    while True:
        page = await browse(ctx, topic, partition, start=start, value=value, newest=newest,
                            filters=filters, cursor=cursor, cap=None,
                            limit=min(EXPORT_PAGE, MAX_EXPORT_RECORDS - sent))
        for record in page["records"]:
            del record["key_b64"], record["value_b64"], record["truncated"]
            yield json.dumps({"topic": topic, **record}) + "\n"
        sent += len(page["records"])
        scanned += page["scanned_bytes"]
        cursor = parse_cursor(page["cursor"])
        if page["done"]:
            return
        if sent >= MAX_EXPORT_RECORDS or scanned >= MAX_EXPORT_BYTES:
            yield json.dumps({"stopped": f"export bound reached after {sent} records, "
                                         f"{scanned} bytes read", "cursor": page["cursor"]}) + "\n"
            return


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
