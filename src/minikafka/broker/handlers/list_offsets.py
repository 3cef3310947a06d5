"""ListOffsets (2) and OffsetForLeaderEpoch (23): where a partition's log starts and ends.

LATEST is the high watermark, or under read_committed (isolation level 1) the last stable offset:
a read_committed consumer starting at the end must not start inside an open transaction.

With one leader at the constant epoch 0, the end offset of epoch 0 is the log end offset, and
no other epoch has one; clients validating a position with epoch 0 always find it intact.

ListOffsets v0-v10 are served; v10's timeout is for remote (tiered) storage lookups, which we
do not have. v11's EARLIEST_PENDING_UPLOAD spec (KIP-1023) is left out with tiered storage.
"""

from __future__ import annotations

from typing import Any

from kafka.protocol.api_key import ApiKey

from ...errors import ErrorCode, KafkaError
from ...log import LEADER_EPOCH, Partition
from ...protocol.codec import RequestHeader, response_class
from ..acls import AclOperation, ResourceType
from ..context import Api, BrokerContext, authorize
from .fetch import READ_COMMITTED

LATEST, EARLIEST, MAX_TIMESTAMP = -1, -2, -3
EARLIEST_LOCAL, LATEST_TIERED = -4, -5  # v8 (KIP-405), v9 (KIP-1005)


def _lookup(partition: Partition, timestamp: int, read_committed: bool) -> tuple[int, int]:
    """(offset, timestamp) for a ListOffsets spec; (-1, -1) when no record qualifies."""
    if timestamp == LATEST:
        return (partition.last_stable_offset if read_committed
                else partition.high_watermark), -1
    if timestamp in (EARLIEST, EARLIEST_LOCAL):  # every segment is local
        return partition.log_start_offset, -1
    if timestamp == LATEST_TIERED:  # nothing is tiered: Kafka's answer without remote storage
        return -1, -1
    if timestamp == MAX_TIMESTAMP:
        largest = partition.max_timestamp  # then the first record carrying it
        if largest < 0:
            return -1, -1
        timestamp = largest
    if timestamp < 0:
        raise KafkaError(f"unknown offset spec {timestamp}", ErrorCode.INVALID_REQUEST)
    found = partition.offset_for_timestamp(timestamp)
    return found if found is not None else (-1, -1)


async def handle_list_offsets(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    cls = response_class(ApiKey.ListOffsets, header.api_version)
    topic_cls = cls.ListOffsetsTopicResponse
    part_cls = topic_cls.ListOffsetsPartitionResponse
    read_committed = getattr(request, "isolation_level", 0) == READ_COMMITTED  # v2+
    topics = []
    for topic in request.topics:
        partitions = []
        for wanted in topic.partitions:
            answer = part_cls(partition_index=wanted.partition_index, error_code=0,
                              old_style_offsets=[], timestamp=-1, offset=-1, leader_epoch=-1)
            try:
                authorize(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, topic.name)
                partition = ctx.log.partition(topic.name, wanted.partition_index)
                if wanted.current_leader_epoch > LEADER_EPOCH:
                    raise KafkaError("leader epoch from the future", ErrorCode.UNKNOWN_LEADER_EPOCH)
                offset, timestamp = _lookup(partition, wanted.timestamp, read_committed)
            except KafkaError as exc:
                answer.error_code = exc.code
            else:
                answer.offset, answer.timestamp = offset, timestamp
                answer.old_style_offsets = [offset] if offset >= 0 else []
                answer.leader_epoch = LEADER_EPOCH if offset >= 0 else -1
            partitions.append(answer)
        topics.append(topic_cls(name=topic.name, partitions=partitions))
    return cls(throttle_time_ms=0, topics=topics)


async def handle_offset_for_leader_epoch(ctx: BrokerContext, header: RequestHeader,
                                         request: Any) -> Any:
    cls = response_class(ApiKey.OffsetForLeaderEpoch, header.api_version)
    topic_cls = cls.OffsetForLeaderTopicResult
    part_cls = topic_cls.EpochEndOffset
    topics = []
    for topic in request.topics:
        partitions = []
        for wanted in topic.partitions:
            answer = part_cls(error_code=0, partition=wanted.partition, leader_epoch=-1,
                              end_offset=-1)
            try:
                authorize(ctx, AclOperation.DESCRIBE, ResourceType.TOPIC, topic.topic)
                partition = ctx.log.partition(topic.topic, wanted.partition)
            except KafkaError as exc:
                answer.error_code = exc.code
            else:
                if wanted.current_leader_epoch > LEADER_EPOCH:
                    answer.error_code = ErrorCode.UNKNOWN_LEADER_EPOCH
                elif wanted.leader_epoch == LEADER_EPOCH:
                    answer.leader_epoch, answer.end_offset = LEADER_EPOCH, partition.log_end_offset
            partitions.append(answer)
        topics.append(topic_cls(topic=topic.topic, partitions=partitions))
    return cls(throttle_time_ms=0, topics=topics)


APIS = (
    Api(ApiKey.ListOffsets, 0, 10, handle_list_offsets),
    Api(ApiKey.OffsetForLeaderEpoch, 2, 4, handle_offset_for_leader_epoch),
)
