"""Topic ids: a random UUID per topic, kept across restarts, new for a re-created topic, and
UNKNOWN_TOPIC_ID where Kafka answers it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kafka.protocol.admin import CreateTopicsRequest, DeleteTopicsRequest
from kafka.protocol.consumer import FetchRequest
from kafka.protocol.metadata import MetadataRequest

from minikafka.errors import ErrorCode
from minikafka.records import decode_batch

from .conftest import InProcessBroker, RawClient
from .test_semantics import produce

ZERO = uuid.UUID(int=0)


def create(client: RawClient, name: str, validate_only: bool = False) -> Any:
    """CreateTopics v7 of one topic; its result."""
    cls = CreateTopicsRequest[7]
    response: Any = client.request(cls(topics=[cls.CreatableTopic(
        name=name, num_partitions=1, replication_factor=1, assignments=[], configs=[])],
        timeout_ms=10_000, validate_only=validate_only))
    return response.topics[0]


def _metadata(client: RawClient, name: str | None = None, topic_id: uuid.UUID = ZERO) -> Any:
    cls = MetadataRequest[13]  # the newest: v13 adds a top-level error code
    response: Any = client.request(cls(
        topics=[cls.MetadataRequestTopic(topic_id=topic_id, name=name)],
        allow_auto_topic_creation=False, include_topic_authorized_operations=False))
    return response.topics[0]


def _delete(client: RawClient, name: str | None = None, topic_id: uuid.UUID = ZERO) -> Any:
    cls = DeleteTopicsRequest[6]
    response: Any = client.request(cls(
        topics=[cls.DeleteTopicState(name=name, topic_id=topic_id)], timeout_ms=10_000))
    return response.responses[0]


def test_a_topic_keeps_its_id_and_a_recreated_one_gets_another(own_broker: InProcessBroker,
                                                               topic: str) -> None:
    client = RawClient(own_broker.start().bootstrap)
    created = create(client, topic)
    assert created.error_code == 0 and created.topic_id not in (None, ZERO)
    assert _metadata(client, topic).topic_id == created.topic_id
    client.close()
    own_broker.restart()
    client = RawClient(own_broker.bootstrap)
    assert _metadata(client, topic).topic_id == created.topic_id
    assert _delete(client, topic).error_code == 0
    again = create(client, topic)
    assert again.topic_id not in (None, ZERO, created.topic_id)
    client.close()


def test_topics_are_found_and_deleted_by_id(raw: RawClient, topic: str) -> None:
    topic_id = create(raw, topic).topic_id
    by_id = _metadata(raw, topic_id=topic_id)
    assert (by_id.error_code, by_id.name) == (0, topic)
    deleted = _delete(raw, topic_id=topic_id)
    assert (deleted.error_code, deleted.name) == (0, topic)
    assert _metadata(raw, topic).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    # Looked up by id again after each change: the old id is gone, the new one is found
    assert _metadata(raw, topic_id=topic_id).error_code == ErrorCode.UNKNOWN_TOPIC_ID
    again = create(raw, topic).topic_id
    assert _metadata(raw, topic_id=again).name == topic
    assert _metadata(raw, topic_id=topic_id).error_code == ErrorCode.UNKNOWN_TOPIC_ID


def test_unknown_ids_are_unknown_topic_id(raw: RawClient) -> None:
    unknown = uuid.uuid4()
    found = _metadata(raw, topic_id=unknown)
    assert (found.error_code, found.topic_id) == (ErrorCode.UNKNOWN_TOPIC_ID, unknown)
    assert _delete(raw, topic_id=unknown).error_code == ErrorCode.UNKNOWN_TOPIC_ID


@pytest.mark.parametrize("version", [13, 17])
def test_fetch_names_topics_by_id_from_v13(raw: RawClient, broker: InProcessBroker, topic: str,
                                           version: int) -> None:
    topic_id = create(raw, topic).topic_id
    produce(raw, topic, b"one", b"two")
    unknown = uuid.uuid4()
    cls = FetchRequest[version]
    response: Any = raw.request(cls(
        replica_id=-1, replica_state=cls.ReplicaState(replica_id=-1, replica_epoch=-1)
        if version >= 15 else None, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20,
        isolation_level=0, session_id=0, session_epoch=-1,
        topics=[cls.FetchTopic(topic_id=tid, partitions=[cls.FetchTopic.FetchPartition(
            partition=0, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1,
            log_start_offset=-1, partition_max_bytes=1 << 20)]) for tid in (topic_id, unknown)],
        forgotten_topics_data=[], rack_id=""))
    known, missing = response.responses
    assert known.topic_id == topic_id and known.partitions[0].error_code == 0
    assert [r.value for r in decode_batch(known.partitions[0].records).records] == [b"one",
                                                                                    b"two"]
    assert missing.topic_id == unknown
    assert missing.partitions[0].error_code == ErrorCode.UNKNOWN_TOPIC_ID


def test_a_topic_with_neither_name_nor_id_is_invalid_request(raw: RawClient) -> None:
    """Found by the fuzzing campaign: it raised out of the Metadata handler (a traceback, the
    connection closed). Kafka answers such a topic with INVALID_REQUEST."""
    assert _metadata(raw, None, ZERO).error_code == ErrorCode.INVALID_REQUEST
    assert _delete(raw, None, ZERO).error_code == ErrorCode.INVALID_REQUEST
    assert _metadata(raw, "__no_such_topic__").error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
