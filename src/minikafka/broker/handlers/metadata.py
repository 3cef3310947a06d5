"""Metadata (3) and DescribeCluster (60): one node, leader of every partition at epoch 0.

The leader epoch is the log's constant 0 everywhere (here, in the batches the log writes, in
Fetch, ListOffsets and OffsetForLeaderEpoch): one node never changes leaders.
"""

from __future__ import annotations

import uuid
from typing import Any

from kafka.protocol.api_key import ApiKey

from ...errors import ErrorCode, KafkaError
from ...log import LEADER_EPOCH
from ...log.config import valid_topic_name
from ...protocol.codec import RequestHeader, response_class
from .. import ops
from ..acls import CLUSTER_NAME, AclOperation, ResourceType
from ..context import (
    Api,
    BrokerContext,
    advertised_address,
    authorized,
    authorized_operations,
    refusal,
)

TOPIC = ResourceType.TOPIC


ZERO_ID = uuid.UUID(int=0)


def _requested_topics(header: RequestHeader, request: Any
                      ) -> list[tuple[str | None, uuid.UUID]] | None:
    """(name, id) of the topics asked for, or None for all (v0: empty list means all; v1+:
    null). From v10 a topic may be named by its id, with a null name from v12."""
    if request.topics is None or (header.api_version == 0 and not request.topics):
        return None
    return [(t.name, getattr(t, "topic_id", None) or ZERO_ID) for t in request.topics]


def _topic_error(cls: Any, name: str | None, code: ErrorCode, topic_id: uuid.UUID = ZERO_ID
                 ) -> Any:
    return cls.MetadataResponseTopic(error_code=code, name=name, topic_id=topic_id,
                                     is_internal=False, partitions=[], authorized_operations=None)


def _creates_no_topic(ctx: BrokerContext, header: RequestHeader, request: Any) -> bool:
    """True when the request cannot auto-create a topic, the one thing Metadata waits for."""
    if not ctx.config.auto_create_topics or (header.api_version >= 4
                                             and not request.allow_auto_topic_creation):
        return True
    wanted = _requested_topics(header, request)
    return wanted is None or all(name is None or topic_id != ZERO_ID or ctx.log.exists(name)
                                 for name, topic_id in wanted)


def _cluster_operations(ctx: BrokerContext, asked: bool) -> set[int] | None:
    return authorized_operations(ctx, ResourceType.CLUSTER, CLUSTER_NAME) if asked else None


async def handle_metadata(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    """All topics means those the client may DESCRIBE; one asked for that it may not is
    answered TOPIC_AUTHORIZATION_FAILED, and one it may not CREATE is not created
    (UNKNOWN_TOPIC_OR_PARTITION), as in Kafka."""
    cls = response_class(ApiKey.Metadata, header.api_version)
    allow_create = header.api_version < 4 or request.allow_auto_topic_creation
    wanted = _requested_topics(header, request)
    if wanted is None:
        wanted = [(name, ZERO_ID) for name in sorted(ctx.log.topics())
                  if authorized(ctx, AclOperation.DESCRIBE, TOPIC, name)]
    topics = []
    for name, topic_id in wanted:
        if topic_id != ZERO_ID:  # Kafka: an id wins over a name
            name = ctx.log.topic_by_id(topic_id)
            if name is None:
                topics.append(_topic_error(cls, None, ErrorCode.UNKNOWN_TOPIC_ID, topic_id))
                continue
        if name is None:  # neither a name nor an id
            topics.append(_topic_error(cls, None, ErrorCode.INVALID_REQUEST))
            continue
        if refused := refusal(ctx, AclOperation.DESCRIBE, TOPIC, name):
            topics.append(_topic_error(cls, name, refused, topic_id))
            continue
        try:
            if allow_create and ctx.config.auto_create_topics and not ctx.log.exists(name):
                # As Kafka's AutoTopicCreationManager: ready on the client's next request.
                await ops.auto_create_topic(ctx, name)
                topics.append(_topic_error(cls, name, ErrorCode.LEADER_NOT_AVAILABLE))
                continue
            config = ctx.log.topic_config(name) if ctx.log.exists(name) else None
        except KafkaError as exc:  # an invalid name we were asked to create, a damaged config
            code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION \
                if exc.code == ErrorCode.TOPIC_AUTHORIZATION_FAILED else exc.code  # no CREATE
            topics.append(_topic_error(cls, name, code))
            continue
        if config is None:
            code = (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if valid_topic_name(name)
                    else ErrorCode.INVALID_TOPIC_EXCEPTION)  # as Kafka, creating or not
            topics.append(_topic_error(cls, name, code))
            continue
        partitions = [
            cls.MetadataResponseTopic.MetadataResponsePartition(
                error_code=0, partition_index=i, leader_id=ctx.node_id, leader_epoch=LEADER_EPOCH,
                replica_nodes=[ctx.node_id], isr_nodes=[ctx.node_id], offline_replicas=[])
            for i in range(config.partitions)
        ]
        topics.append(cls.MetadataResponseTopic(
            error_code=0, name=name, topic_id=config.topic_id or ZERO_ID, is_internal=False,
            partitions=partitions,
            authorized_operations=authorized_operations(ctx, TOPIC, name)
            if request.include_topic_authorized_operations else None,
        ))
    host, port = advertised_address(ctx)
    return cls(
        throttle_time_ms=0,
        brokers=[cls.MetadataResponseBroker(node_id=ctx.node_id, host=host, port=port, rack=None)],
        cluster_id=ctx.cluster_id,
        controller_id=ctx.node_id,
        topics=topics,
        authorized_operations=_cluster_operations(
            ctx, request.include_cluster_authorized_operations),
        error_code=0,
    )


async def handle_describe_cluster(ctx: BrokerContext, header: RequestHeader, request: Any
                                  ) -> Any:
    cls = response_class(ApiKey.DescribeCluster, header.api_version)
    host, port = advertised_address(ctx)
    if request.endpoint_type != 1:  # 2 = controllers: we expose no separate controller listener
        return cls(throttle_time_ms=0, error_code=ErrorCode.UNSUPPORTED_ENDPOINT_TYPE,
                   error_message="only broker endpoints are served",
                   endpoint_type=request.endpoint_type, cluster_id=ctx.cluster_id,
                   controller_id=-1, brokers=[], authorized_operations=None)
    return cls(
        throttle_time_ms=0, error_code=0, error_message=None, endpoint_type=1,
        cluster_id=ctx.cluster_id, controller_id=ctx.node_id,
        brokers=[cls.DescribeClusterBroker(broker_id=ctx.node_id, host=host, port=port,
                                           rack=None)],
        authorized_operations=_cluster_operations(
            ctx, request.include_cluster_authorized_operations),
    )


APIS = (
    Api(ApiKey.Metadata, 0, 13, handle_metadata, answers_now=_creates_no_topic),
    Api(ApiKey.DescribeCluster, 0, 1, handle_describe_cluster),
)
