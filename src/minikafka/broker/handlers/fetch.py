"""Fetch (1): file slices of whole batches, long-polled until min_bytes or max_wait_ms.

Nothing here reads record bytes: the log hands out `FileSlice`s and the connection sends them
with sendfile. Each partition's answer starts at the batch containing the fetch offset (clients
skip records before their offset). Only the first partition that returns data may exceed its
byte limits (KIP-74); later ones that would overflow return nothing this time.

Under read_committed (isolation level 1) a partition's answer stops at its last stable offset
and lists the aborted transactions overlapping what it returns, from the `.txnindex` files:
clients drop those transactions' records and skip the markers themselves.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kafka.protocol.api_key import ApiKey

from ...errors import ErrorCode, KafkaError
from ...log import LEADER_EPOCH
from ...protocol.codec import RequestHeader
from ...protocol.fetch import (
    MAX_VERSION,
    MIN_VERSION,
    TOPIC_IDS_FROM,
    PartitionData,
    TopicData,
    encode_fetch_response,
)
from ..acls import AclOperation, ResourceType
from ..bounds import client_gone
from ..context import Api, BrokerContext, authorize
from ..quotas import CONSUMER_BYTE_RATE

READ_COMMITTED = 1
# Kafka's FetchMetadata.isFull: epoch 0 asks for a new session (we answer session id 0, as Kafka
# does when its session cache is full), -1 (FINAL_EPOCH) for none. Either is a full fetch,
# served whatever session id it names (Kafka closes that session; we have none to close).
FULL_FETCH_EPOCHS = (0, -1)


def _read_partition(ctx: BrokerContext, topic: str, request: Any, budget: int, first: bool,
                    read_committed: bool) -> tuple[PartitionData, int]:
    """The partition's answer and the record bytes it carries."""
    index = request.partition
    try:
        authorize(ctx, AclOperation.READ, ResourceType.TOPIC, topic)
        partition = ctx.log.partition(topic, index)
    except KafkaError as exc:
        return PartitionData(index, exc.code, records=b""), 0
    stable = partition.last_stable_offset
    data = PartitionData(
        index,
        high_watermark=partition.high_watermark,
        last_stable_offset=stable,
        log_start_offset=partition.log_start_offset,
        aborted_transactions=[] if read_committed else None,
        records=b"",
    )
    if request.current_leader_epoch > LEADER_EPOCH:
        data.error_code = ErrorCode.UNKNOWN_LEADER_EPOCH
        return data, 0
    limit = min(request.partition_max_bytes, budget)
    try:
        found = partition.read(request.fetch_offset, max(limit, 1),
                               stable if read_committed else None)
    except KafkaError as exc:  # OFFSET_OUT_OF_RANGE
        data.error_code = exc.code
        return data, 0
    if found is None or not (first or found.length <= limit):
        return data, 0
    data.records = found
    if read_committed:
        data.aborted_transactions = partition.aborted_transactions(request.fetch_offset,
                                                                   found.next_offset)
    return data, found.length


def _topic_names(ctx: BrokerContext, version: int, request: Any) -> list[str | None]:
    """The requested topics' names: given up to v12, found by id from v13 (None: unknown)."""
    if version < TOPIC_IDS_FROM:
        return [topic.topic for topic in request.topics]
    return [ctx.log.topic_by_id(topic.topic_id) for topic in request.topics]


def _read_all(ctx: BrokerContext, request: Any, names: list[str | None]
              ) -> tuple[list[TopicData], int, bool]:
    """One pass over the requested partitions: (topics, record bytes, any partition error)."""
    budget = request.max_bytes
    total = 0
    failed = False
    read_committed = request.isolation_level == READ_COMMITTED
    topics = []
    for topic, name in zip(request.topics, names, strict=True):
        partitions = []
        for wanted in topic.partitions:
            if name is None:
                data, size = PartitionData(wanted.partition, ErrorCode.UNKNOWN_TOPIC_ID), 0
            else:
                data, size = _read_partition(ctx, name, wanted, budget, total == 0,
                                             read_committed)
            total += size
            budget -= size
            failed = failed or data.error_code != 0
            partitions.append(data)
        topics.append(TopicData(name or "", partitions, getattr(topic, "topic_id", None)))
    return topics, total, failed


async def handle_fetch(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    if request.session_epoch not in FULL_FETCH_EPOCHS:
        # Incremental: of a session we never handed out (KIP-227 lets a broker keep none).
        return encode_fetch_response(header, [], error_code=ErrorCode.FETCH_SESSION_ID_NOT_FOUND)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(request.max_wait_ms, 0) / 1000
    names = _topic_names(ctx, header.api_version, request)
    keys = [(name, p.partition) for t, name in zip(request.topics, names, strict=True)
            if name is not None for p in t.partitions]
    while True:
        topics, total, failed = _read_all(ctx, request, names)
        remaining = deadline - loop.time()
        if total >= request.min_bytes or failed or remaining <= 0 or ctx.stopping \
                or client_gone():
            if ctx.quotas.active:
                throttle = ctx.quotas.charge(header.client_id, CONSUMER_BYTE_RATE, total)
                if throttle:  # as Kafka: an empty answer, and its bytes not charged
                    ctx.quotas.unrecord(header.client_id or "", CONSUMER_BYTE_RATE, total)
                    return encode_fetch_response(header, [], throttle_time_ms=throttle)
            ctx.metrics.fetched(request, topics)
            return encode_fetch_response(header, topics)
        await ctx.appends.wait(keys, remaining)


APIS = (Api(ApiKey.Fetch, MIN_VERSION, MAX_VERSION, handle_fetch),)
