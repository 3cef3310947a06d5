"""Produce (0): append each partition's record batch to the log, as opaque bytes.

The batch is checked only by its 61-byte header (the log validates framing and CRC and assigns
offsets by patching bytes 0-7); records are never decoded. Appends happen before the handler's
first `await`, so pipelined requests on one connection are appended in the order they were sent
(idempotent producers rely on that). acks=all then waits for the flush policy: under `always`,
one group-committed fsync per partition.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from kafka.protocol.api_key import ApiKey

from ...errors import (
    CorruptRecordError,
    ErrorCode,
    InvalidRecordError,
    KafkaError,
)
from ...protocol.codec import RequestHeader, response_class
from ...records import HEADER_SIZE, MAGIC, batch_size_at, read_header
from ..context import Api, BrokerContext, CloseConnection

log = logging.getLogger("minikafka.broker")

MIN_SERVED_VERSION = 3  # v0-2 carry old message formats: answered UNSUPPORTED_VERSION (Kafka 4)
# Rejections worth a warning: the client sent something broken, not something merely unknown.
_WARN = {ErrorCode.CORRUPT_MESSAGE, ErrorCode.INVALID_RECORD, ErrorCode.INVALID_TOPIC_EXCEPTION,
         ErrorCode.MESSAGE_TOO_LARGE}


@dataclass(slots=True)
class _Result:
    error: int = 0
    message: str | None = None
    base_offset: int = -1
    log_append_time: int = -1
    log_start_offset: int = -1


def check_single_batch(records: bytes | None) -> None:
    """Produce v3+ carries exactly one RecordBatch v2 per partition."""
    if not records:
        raise InvalidRecordError("produce request without a record batch")
    if len(records) < HEADER_SIZE:
        raise CorruptRecordError(f"record batch truncated: {len(records)} bytes")
    if read_header(records).magic != MAGIC:
        raise InvalidRecordError("record batch magic must be 2 for produce v3+")
    size = batch_size_at(records)
    if size > len(records):
        raise CorruptRecordError(f"record batch claims {size} bytes, {len(records)} sent")
    if size < len(records):
        raise InvalidRecordError("produce requests carry exactly one record batch per partition")


def _append(ctx: BrokerContext, topic: str, index: int, records: bytes | None,
            synced: set[Any]) -> _Result:
    try:
        partition = ctx.partition(topic, index, allow_create=True)
        check_single_batch(records)
        info = partition.append(records)
    except KafkaError as exc:
        level = logging.WARNING if exc.code in _WARN else logging.DEBUG
        log.log(level, "produce to %s-%d rejected: %s", topic, index, exc)
        return _Result(exc.code, str(exc))
    ctx.appends.notify((topic, index))
    ctx.metrics.produced(topic, records, info)
    synced.add(partition)
    return _Result(0, None, info.base_offset, info.log_append_time, info.log_start_offset)


async def handle_produce(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    acks = request.acks
    refusal = None
    if header.api_version < MIN_SERVED_VERSION:
        refusal = _Result(ErrorCode.UNSUPPORTED_VERSION, "produce v0-2 are not supported")
    elif acks not in (0, 1, -1):
        refusal = _Result(ErrorCode.INVALID_REQUIRED_ACKS, f"acks must be 0, 1 or -1, not {acks}")
    synced: set[Any] = set()
    results = [
        (topic.name, [(pd.index, refusal or _append(ctx, topic.name, pd.index, pd.records, synced))
                      for pd in topic.partition_data])
        for topic in request.topic_data
    ]
    if acks == 0:
        # No response is expected; Kafka closes the connection so the producer notices errors.
        failed = [f"{t}-{i}" for t, parts in results for i, r in parts if r.error]
        if failed:
            raise CloseConnection(f"acks=0 produce failed for {', '.join(failed)}")
        return None
    if acks == -1 and synced and ctx.log.flush_policy.mode == "always":
        await asyncio.gather(*(ctx.commits.sync(p) for p in synced))
    cls = response_class(ApiKey.Produce, header.api_version)
    topic_cls = cls.TopicProduceResponse
    part_cls = topic_cls.PartitionProduceResponse
    return cls(
        responses=[
            topic_cls(name=name, partition_responses=[
                part_cls(index=index, error_code=r.error, base_offset=r.base_offset,
                         log_append_time_ms=r.log_append_time, log_start_offset=r.log_start_offset,
                         record_errors=[], error_message=r.message)
                for index, r in parts])
            for name, parts in results
        ],
        throttle_time_ms=0,
    )


APIS = (Api(ApiKey.Produce, 0, 9, handle_produce),)
