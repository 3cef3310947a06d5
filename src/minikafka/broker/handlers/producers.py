"""DescribeProducers (61): the producers each partition's log knows (kafka-transactions.sh
describe-producers), with their epochs, last sequences and ongoing transactions' first offsets."""

from __future__ import annotations

from typing import Any

from kafka.protocol.api_key import ApiKey

from ...errors import KafkaError
from ...protocol.codec import RequestHeader, response_class
from ..acls import AclOperation, ResourceType
from ..context import Api, BrokerContext, authorize


async def handle_describe_producers(ctx: BrokerContext, header: RequestHeader, request: Any
                                    ) -> Any:
    cls = response_class(ApiKey.DescribeProducers, header.api_version)
    topic_cls = cls.TopicResponse
    part_cls = topic_cls.PartitionResponse
    state_cls = part_cls.ProducerState
    topics = []
    for topic in request.topics:
        partitions = []
        for index in topic.partition_indexes:
            answer = part_cls(partition_index=index, error_code=0, error_message=None,
                              active_producers=[])
            try:
                authorize(ctx, AclOperation.READ, ResourceType.TOPIC, topic.name)
                states = ctx.log.partition(topic.name, index).producer_states()
            except KafkaError as exc:
                answer.error_code, answer.error_message = exc.code, str(exc)
            else:
                answer.active_producers = [state_cls(**s._asdict()) for s in states]
            partitions.append(answer)
        topics.append(topic_cls(name=topic.name, partitions=partitions))
    return cls(throttle_time_ms=0, topics=topics)


APIS = (Api(ApiKey.DescribeProducers, 0, 0, handle_describe_producers),)
