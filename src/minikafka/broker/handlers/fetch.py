"""Fetch (1): file slices of whole batches, long-polled until min_bytes or max_wait_ms.

Nothing here reads record bytes: the log hands out `FileSlice`s and the connection sends them
with sendfile. Each partition's answer starts at the batch containing the fetch offset (clients
skip records before their offset). Only the first partition that returns data may exceed its
byte limits (KIP-74); later ones that would overflow return nothing this time.

Under read_committed (isolation level 1) a partition's answer stops at its last stable offset
and lists the aborted transactions overlapping what it returns, from the `.txnindex` files:
clients drop those transactions' records and skip the markers themselves.

From v7 a fetch may belong to an incremental fetch session (fetch_sessions.py): then the
partitions read are the session's, and those with nothing new are left out of the answer.
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
from ..fetch_sessions import FetchContext, FetchPartition, Key
from ..quotas import CONSUMER_BYTE_RATE

READ_COMMITTED = 1
SESSIONS_FROM = 7  # older versions have no session fields: always sessionless


def _read_partition(ctx: BrokerContext, wanted: FetchPartition, budget: int, first: bool,
                    read_committed: bool) -> tuple[PartitionData, int]:
    """The partition's answer and the record bytes it carries."""
    index = wanted.partition
    if wanted.topic is None:
        return PartitionData(index, ErrorCode.UNKNOWN_TOPIC_ID), 0
    try:
        authorize(ctx, AclOperation.READ, ResourceType.TOPIC, wanted.topic)
        partition = ctx.log.partition(wanted.topic, index)
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
    if wanted.current_leader_epoch > LEADER_EPOCH:
        data.error_code = ErrorCode.UNKNOWN_LEADER_EPOCH
        return data, 0
    limit = min(wanted.max_bytes, budget)
    try:
        found = partition.read(wanted.fetch_offset, max(limit, 1),
                               stable if read_committed else None)
    except KafkaError as exc:  # OFFSET_OUT_OF_RANGE
        data.error_code = exc.code
        return data, 0
    if found is None or not (first or found.length <= limit):
        return data, 0
    data.records = found
    if read_committed:
        data.aborted_transactions = partition.aborted_transactions(wanted.fetch_offset,
                                                                   found.next_offset)
    return data, found.length


def _topic_name(ctx: BrokerContext, version: int, topic: Any) -> str | None:
    """A requested topic's name: given up to v12, found by id from v13 (None: unknown)."""
    if version < TOPIC_IDS_FROM:
        return str(topic.topic)
    return ctx.log.topic_by_id(topic.topic_id)


def _wanted(ctx: BrokerContext, version: int, request: Any) -> list[FetchPartition]:
    """The partitions the request names, in its order."""
    wanted: list[FetchPartition] = []
    for topic in request.topics:
        name = _topic_name(ctx, version, topic)
        topic_id = topic.topic_id if version >= TOPIC_IDS_FROM else None
        wanted.extend(FetchPartition(name, topic_id, p.partition, p.fetch_offset,
                                     p.partition_max_bytes, p.current_leader_epoch)
                      for p in topic.partitions)
    return wanted


def _forgotten(version: int, request: Any) -> list[Key]:
    """The partitions an incremental fetch drops from its session (keyed as FetchPartition)."""
    return [(topic.topic_id if version >= TOPIC_IDS_FROM else topic.topic, index)
            for topic in request.forgotten_topics_data or () for index in topic.partitions]


def _context(ctx: BrokerContext, version: int, request: Any) -> FetchContext:
    wanted = _wanted(ctx, version, request)
    if version < SESSIONS_FROM:
        return FetchContext(wanted)
    return ctx.fetch_sessions.new_context(request.session_id, request.session_epoch, wanted,
                                          _forgotten(version, request))


def _read_all(ctx: BrokerContext, request: Any, wanted: list[FetchPartition]
              ) -> tuple[list[PartitionData], int, bool]:
    """One pass over the partitions to read: (their answers, record bytes, any error)."""
    budget = request.max_bytes
    total = 0
    failed = False
    read_committed = request.isolation_level == READ_COMMITTED
    answers = []
    for partition in wanted:
        data, size = _read_partition(ctx, partition, budget, total == 0, read_committed)
        total += size
        budget -= size
        failed = failed or data.error_code != 0
        answers.append(data)
    return answers, total, failed


def _by_topic(answered: list[tuple[FetchPartition, PartitionData]]) -> list[TopicData]:
    """Consecutive partitions of one topic as one topic entry, as the request grouped them."""
    topics: list[TopicData] = []
    for wanted, data in answered:
        if not topics or topics[-1].topic_id != wanted.topic_id \
                or topics[-1].name != (wanted.topic or ""):
            topics.append(TopicData(wanted.topic or "", [], wanted.topic_id))
        topics[-1].partitions.append(data)
    return topics


async def handle_fetch(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    context = _context(ctx, header.api_version, request)
    if context.error_code:
        return encode_fetch_response(header, [], error_code=context.error_code)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(request.max_wait_ms, 0) / 1000
    keys = [(p.topic, p.partition) for p in context.partitions if p.topic is not None]
    while True:
        data, total, failed = _read_all(ctx, request, context.partitions)
        remaining = deadline - loop.time()
        if total >= request.min_bytes or failed or remaining <= 0 or ctx.stopping \
                or client_gone():
            if ctx.quotas.active:
                throttle = ctx.quotas.charge(header.client_id, CONSUMER_BYTE_RATE, total)
                if throttle:  # as Kafka: an empty answer, and its bytes not charged
                    ctx.quotas.unrecord(header.client_id or "", CONSUMER_BYTE_RATE, total)
                    return encode_fetch_response(header, [], throttle_time_ms=throttle)
            answered = context.answer(data)
            ctx.metrics.fetched(answered)
            return encode_fetch_response(header, _by_topic(answered),
                                         session_id=context.session_id)
        await ctx.appends.wait(keys, remaining)


APIS = (Api(ApiKey.Fetch, MIN_VERSION, MAX_VERSION, handle_fetch),)
