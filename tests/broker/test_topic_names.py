"""Kafka's answers for bad topic names and bad config requests: an invalid name in Metadata,
names colliding by '.' vs '_', duplicate keys in IncrementalAlterConfigs; and for a topic that
Metadata auto-creates."""

from __future__ import annotations

from typing import Any

from kafka.protocol.admin import IncrementalAlterConfigsRequest
from kafka.protocol.metadata import MetadataRequest

from minikafka.errors import ErrorCode

from .conftest import InProcessBroker, RawClient, create_topic
from .test_topic_ids import create as _create


def test_an_invalid_name_in_metadata_is_invalid_topic_even_without_auto_create(
        own_broker: InProcessBroker) -> None:
    own_broker.extra = (*own_broker.extra, "--no-auto-create-topics")
    raw = RawClient(own_broker.start().bootstrap)
    cls = MetadataRequest[12]
    response: Any = raw.request(cls(
        topics=[cls.MetadataRequestTopic(name=name) for name in ("bad name!", "fine-but-absent")],
        allow_auto_topic_creation=False, include_topic_authorized_operations=False))
    raw.close()
    assert [t.error_code for t in response.topics] == [
        ErrorCode.INVALID_TOPIC_EXCEPTION, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]


def test_names_colliding_by_dot_and_underscore_are_refused(raw: RawClient, topic: str) -> None:
    dotted = topic + ".a.b"
    assert _create(raw, dotted).error_code == 0
    for other in (topic + ".a_b", topic + "_a.b"):
        refused = _create(raw, other)
        assert refused.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
        assert "collides" in refused.error_message and dotted in refused.error_message
    assert _create(raw, dotted).error_code == ErrorCode.TOPIC_ALREADY_EXISTS
    assert _create(raw, topic + "_a_b", validate_only=True).error_code == (
        ErrorCode.INVALID_TOPIC_EXCEPTION)  # a dry run checks the same


def test_duplicate_keys_in_incremental_alter_configs_are_invalid_request(
        raw: RawClient, broker: InProcessBroker, topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    cls = IncrementalAlterConfigsRequest[1]
    resource = cls.AlterConfigsResource
    op = resource.AlterableConfig
    response: Any = raw.request(cls(resources=[resource(
        resource_type=2, resource_name=topic,
        configs=[op(name="retention.ms", config_operation=0, value="1000"),
                 op(name="retention.ms", config_operation=0, value="2000")])],
        validate_only=False))
    assert response.responses[0].error_code == ErrorCode.INVALID_REQUEST


def _metadata(raw: RawClient, name: str) -> Any:
    cls = MetadataRequest[12]
    response: Any = raw.request(cls(topics=[cls.MetadataRequestTopic(name=name)],
                                    allow_auto_topic_creation=True,
                                    include_topic_authorized_operations=False))
    return response.topics[0]


def test_auto_creation_answers_leader_not_available_first(raw: RawClient, topic: str) -> None:
    """As Kafka's AutoTopicCreationManager: the request that creates a topic gets
    LEADER_NOT_AVAILABLE and no partitions; clients retry and the next answer has them. (So a
    topic deleted while clients poll its metadata is not served again by the same request
    that brings it back.)"""
    first = _metadata(raw, topic)
    assert (first.error_code, first.partitions) == (ErrorCode.LEADER_NOT_AVAILABLE, [])
    second = _metadata(raw, topic)
    assert (second.error_code, len(second.partitions)) == (0, 1)
