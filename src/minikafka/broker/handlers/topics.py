"""CreateTopics (19), DeleteTopics (20), CreatePartitions (37), DeleteRecords (21).

One node holds every replica, so the only replication factor is 1 (or -1, "the default") and a
manual assignment may name only this node. As in Kafka, one request makes at most 10,000
partitions, all its topics together; past that every topic of it is refused (POLICY_VIOLATION).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from kafka.protocol.api_key import ApiKey

from ...errors import ErrorCode, InvalidConfigError, KafkaError, PolicyViolationError
from ...log import TopicConfig
from ...protocol.codec import RequestHeader, response_class
from .. import ops
from ..context import Api, BrokerContext
from .configs import topic_config_entries

log = logging.getLogger("minikafka.broker")

MAX_PARTITIONS_PER_REQUEST = 10_000  # Kafka's ReplicationControlManager.MAX_PARTITIONS_PER_BATCH


def _check_request_size(partitions: int) -> None:
    if partitions > MAX_PARTITIONS_PER_REQUEST:
        raise PolicyViolationError(f"excessively large number of partitions per request: "
                                   f"{partitions}, over {MAX_PARTITIONS_PER_REQUEST}")


def _requested_partitions(ctx: BrokerContext, topic: Any) -> int:
    """Kafka's count: the assignment's length, else the count (the default for -1)."""
    if topic.assignments:
        return len(topic.assignments)
    count: int = topic.num_partitions
    return ctx.config.num_partitions if count == -1 else max(count, 0)


def _new_partitions(ctx: BrokerContext, topic: Any) -> int:
    try:
        count: int = topic.count
        return max(count - ctx.log.topic_config(topic.name).partitions, 0)
    except KafkaError:  # refused on its own later
        return 0


def _check_replicas(ctx: BrokerContext, replication_factor: int,
                    assignments: list[list[int]]) -> None:
    if replication_factor not in (-1, 1):
        raise KafkaError(f"replication factor {replication_factor} is impossible: there is one "
                         "broker", ErrorCode.INVALID_REPLICATION_FACTOR)
    for brokers in assignments:
        if list(brokers) != [ctx.node_id]:
            raise KafkaError(f"replica assignment {list(brokers)} must be [{ctx.node_id}], the "
                             "only broker", ErrorCode.INVALID_REPLICA_ASSIGNMENT)


async def _create_topic(ctx: BrokerContext, topic: Any, validate_only: bool) -> TopicConfig:
    assignments = [a.broker_ids for a in sorted(topic.assignments, key=lambda a: a.partition_index)]
    if assignments:
        if topic.num_partitions != -1 or topic.replication_factor != -1:
            raise KafkaError("give either a partition count and replication factor or a replica "
                             "assignment, not both", ErrorCode.INVALID_REQUEST)
        if [a.partition_index for a in topic.assignments] != list(range(len(assignments))):
            raise KafkaError("replica assignment partitions must be 0..n-1",
                             ErrorCode.INVALID_REPLICA_ASSIGNMENT)
    _check_replicas(ctx, topic.replication_factor, assignments)
    partitions = len(assignments) or topic.num_partitions
    if any(c.value is None for c in topic.configs):
        raise InvalidConfigError("null config values are not allowed")
    return await ops.create_topic(ctx, topic.name, None if partitions == -1 else partitions,
                                  {c.name: c.value for c in topic.configs}, validate_only)


async def handle_create_topics(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    cls = response_class(ApiKey.CreateTopics, header.api_version)
    result_cls = cls.CreatableTopicResult
    config_cls = result_cls.CreatableTopicConfigs
    counts = Counter(t.name for t in request.topics)
    requested = sum(_requested_partitions(ctx, t) for t in request.topics)
    results = []
    for topic in request.topics:
        result = result_cls(name=topic.name, topic_id=None, error_code=0, error_message=None,
                            num_partitions=-1, replication_factor=-1, configs=[])
        try:
            if counts[topic.name] > 1:
                raise KafkaError(f"topic {topic.name!r} is listed more than once",
                                 ErrorCode.INVALID_REQUEST)
            _check_request_size(requested)
            config = await _create_topic(ctx, topic, request.validate_only)
        except KafkaError as exc:
            if exc.code != ErrorCode.TOPIC_ALREADY_EXISTS:
                log.warning("create topic %r refused: %s", topic.name, exc)
            result.error_code, result.error_message = exc.code, str(exc)
        else:
            result.num_partitions, result.replication_factor = config.partitions, 1
            result.topic_id = config.topic_id
            result.configs = [config_cls(name=e.name, value=e.value, read_only=False,
                                         config_source=e.source, is_sensitive=False)
                              for e in topic_config_entries(config)]
        results.append(result)
    return cls(throttle_time_ms=0, topics=results)


async def handle_delete_topics(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    cls = response_class(ApiKey.DeleteTopics, header.api_version)
    if header.api_version >= 6:
        wanted = [(t.name, t.topic_id) for t in request.topics]
    else:
        wanted = [(name, None) for name in request.topic_names]
    results = []
    for name, topic_id in wanted:
        result = cls.DeletableTopicResult(name=name, topic_id=topic_id, error_code=0,
                                          error_message=None)
        try:
            if topic_id is not None and topic_id.int:  # Kafka: an id wins over a name
                result.name = name = ctx.log.topic_by_id(topic_id)
                if name is None:
                    raise KafkaError(f"unknown topic id {topic_id}", ErrorCode.UNKNOWN_TOPIC_ID)
            if name is None:
                raise KafkaError("a topic with neither a name nor an id",
                                 ErrorCode.INVALID_REQUEST)
            await ops.delete_topic(ctx, name)
        except KafkaError as exc:
            result.error_code, result.error_message = exc.code, str(exc)
        results.append(result)
    return cls(throttle_time_ms=0, responses=results)


async def handle_create_partitions(ctx: BrokerContext, header: RequestHeader, request: Any
                                   ) -> Any:
    cls = response_class(ApiKey.CreatePartitions, header.api_version)
    requested = sum(_new_partitions(ctx, t) for t in request.topics)
    results = []
    for topic in request.topics:
        result = cls.CreatePartitionsTopicResult(name=topic.name, error_code=0, error_message=None)
        try:
            _check_request_size(requested)
            _check_replicas(ctx, 1, [a.broker_ids for a in topic.assignments or ()])
            await ops.add_partitions(ctx, topic.name, topic.count, request.validate_only)
        except KafkaError as exc:
            result.error_code, result.error_message = exc.code, str(exc)
        results.append(result)
    return cls(throttle_time_ms=0, results=results)


async def handle_delete_records(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    cls = response_class(ApiKey.DeleteRecords, header.api_version)
    topic_cls = cls.DeleteRecordsTopicResult
    part_cls = topic_cls.DeleteRecordsPartitionResult
    topics = []
    for topic in request.topics:
        partitions = []
        for wanted in topic.partitions:
            result = part_cls(partition_index=wanted.partition_index, low_watermark=-1,
                              error_code=0)
            try:
                result.low_watermark = ops.delete_records(ctx, topic.name, wanted.partition_index,
                                                          wanted.offset)
            except KafkaError as exc:
                result.error_code = exc.code
            partitions.append(result)
        topics.append(topic_cls(name=topic.name, partitions=partitions))
    return cls(throttle_time_ms=0, topics=topics)


APIS = (
    Api(ApiKey.CreateTopics, 0, 7, handle_create_topics),
    Api(ApiKey.DeleteTopics, 0, 6, handle_delete_topics),
    Api(ApiKey.CreatePartitions, 0, 3, handle_create_partitions),
    Api(ApiKey.DeleteRecords, 0, 2, handle_delete_records),
)
