"""Incremental fetch sessions over the wire (KIP-227, Kafka's FetchManager.newContext): raw
frames for the rules and error codes, then the real clients, which use sessions."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.protocol.consumer import FetchRequest
from kafka.protocol.metadata import MetadataRequest

from minikafka.errors import ErrorCode

from .conftest import InProcessBroker, RawClient, create_topic
from .test_confluent import produce as confluent_produce
from .test_semantics import produce

NOT_FOUND = ErrorCode.FETCH_SESSION_ID_NOT_FOUND
BAD_EPOCH = ErrorCode.INVALID_FETCH_SESSION_EPOCH
ID_MIX = ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR


def fetch(raw: RawClient, topic: str, session_id: int, epoch: int,
          offsets: dict[int, int] | None = None, forget: list[int] | None = None,
          version: int = 12) -> Any:
    cls = FetchRequest[version]
    named = {"topic": topic} if version < 13 else {"topic_id": topic_id(raw, topic)}
    topics = [cls.FetchTopic(**named, partitions=[cls.FetchTopic.FetchPartition(
        partition=p, current_leader_epoch=-1, fetch_offset=offset, last_fetched_epoch=-1,
        log_start_offset=-1, partition_max_bytes=1 << 20)
        for p, offset in sorted(offsets.items())])] if offsets else []
    forgotten = [cls.ForgottenTopic(**named, partitions=forget)] if forget else []
    return raw.request(cls(
        replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
        session_id=session_id, session_epoch=epoch, topics=topics,
        forgotten_topics_data=forgotten, rack_id=""))


def topic_id(raw: RawClient, topic: str) -> uuid.UUID:
    cls = MetadataRequest[12]
    response: Any = raw.request(cls(topics=[cls.MetadataRequestTopic(topic_id=None, name=topic)],
                                    allow_auto_topic_creation=False,
                                    include_topic_authorized_operations=False))
    return response.topics[0].topic_id  # type: ignore[no-any-return]


def answered(response: Any) -> dict[int, tuple[int, bool]]:
    """partition -> (high watermark, carries records)"""
    return {p.partition_index: (p.high_watermark, bool(p.records))
            for t in response.responses for p in t.partitions}


def test_full_then_incremental(raw: RawClient, broker: InProcessBroker, topic: str) -> None:
    create_topic(broker.bootstrap, topic, partitions=3)
    produce(raw, topic, b"zero")
    full = fetch(raw, topic, 0, 0, {0: 0, 1: 0, 2: 0})
    assert full.error_code == 0 and full.session_id != 0
    assert answered(full) == {0: (1, True), 1: (0, False), 2: (0, False)}
    session = full.session_id
    # The client moves partition 0 past its record: nothing new anywhere, nothing answered.
    quiet = fetch(raw, topic, session, 1, {0: 1})
    assert (quiet.error_code, quiet.session_id, answered(quiet)) == (0, session, {})
    produce(raw, topic, b"one")  # to partition 0 again
    news = fetch(raw, topic, session, 2)
    assert answered(news) == {0: (2, True)}


def test_forgotten_partitions_are_no_longer_read(raw: RawClient, broker: InProcessBroker,
                                                 topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    session = fetch(raw, topic, 0, 0, {0: 0}).session_id
    forgot = fetch(raw, topic, session, 1, forget=[0])
    assert (forgot.error_code, answered(forgot)) == (0, {})
    produce(raw, topic, b"unseen")
    assert answered(fetch(raw, topic, session, 2)) == {}
    # Added back (an incremental request may add partitions), it is answered at once.
    assert answered(fetch(raw, topic, session, 3, {0: 0})) == {0: (1, True)}


@pytest.mark.parametrize("session_id, epoch, error", [
    (12345, 1, NOT_FOUND), (0, 5, NOT_FOUND), (0, -2, NOT_FOUND), (-1, 1, NOT_FOUND),
])
def test_unknown_sessions(raw: RawClient, broker: InProcessBroker, topic: str,
                          session_id: int, epoch: int, error: int) -> None:
    create_topic(broker.bootstrap, topic)
    response = fetch(raw, topic, session_id, epoch, {0: 0})
    assert (response.error_code, response.session_id, response.responses) == (error, 0, [])


def test_epochs_and_closing(raw: RawClient, broker: InProcessBroker, topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    produce(raw, topic, b"one")
    session = fetch(raw, topic, 0, 0, {0: 0}).session_id
    for wrong in (0 + 2, 7):  # the next epoch is 1
        response = fetch(raw, topic, session, wrong)
        assert (response.error_code, response.session_id, response.responses) \
            == (BAD_EPOCH, 0, [])
    assert fetch(raw, topic, session, 1).error_code == 0
    assert fetch(raw, topic, session, 1).error_code == BAD_EPOCH  # an epoch is used once
    # FINAL_EPOCH: a sessionless full fetch that closes the session it names.
    final = fetch(raw, topic, session, -1, {0: 0})
    assert (final.error_code, final.session_id, answered(final)) == (0, 0, {0: (1, True)})
    assert fetch(raw, topic, session, 2).error_code == NOT_FOUND


@pytest.mark.parametrize("opened, then", [(12, 13), (13, 12)])
def test_a_session_names_topics_one_way(raw: RawClient, broker: InProcessBroker, topic: str,
                                        opened: int, then: int) -> None:
    """Kafka's FETCH_SESSION_TOPIC_ID_ERROR: a session opened naming its topics (to v12) takes
    no incremental fetch naming them by id (v13 on), nor the other way round; the session
    lives on for fetches of its own kind."""
    create_topic(broker.bootstrap, topic)
    produce(raw, topic, b"one")
    opening = fetch(raw, topic, 0, 0, {0: 0}, version=opened)
    assert (opening.error_code, answered(opening)) == (0, {0: (1, True)})
    session = opening.session_id
    mixed = fetch(raw, topic, session, 1, {0: 1}, version=then)
    assert (mixed.error_code, mixed.session_id, mixed.responses) == (ID_MIX, 0, [])
    assert fetch(raw, topic, session, 1, {0: 1}, version=opened).error_code == 0


def test_old_versions_are_sessionless(raw: RawClient, broker: InProcessBroker,
                                      topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    cls = FetchRequest[6]
    response: Any = raw.request(cls(
        replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
        topics=[(topic, [(0, 0, -1, 1 << 20)])]))
    assert response.responses[0][1][0][0] == 0  # partition 0 answered, no session to speak of


def test_no_slots_no_sessions(own_broker: InProcessBroker, topic: str) -> None:
    own_broker.extra = ("--max-incremental-fetch-session-cache-slots", "0")
    own_broker.start()
    create_topic(own_broker.bootstrap, topic)
    raw = RawClient(own_broker.bootstrap)
    response = fetch(raw, topic, 0, 0, {0: 0})
    assert (response.error_code, response.session_id, list(answered(response))) == (0, 0, [0])
    raw.close()


def sessions(broker: InProcessBroker) -> int:
    assert broker.server is not None
    return len(broker.server.broker.ctx.fetch_sessions)


PARTITIONS = 8


def test_confluent_consumer_fetches_sessionless(own_broker: InProcessBroker, topic: str) -> None:
    """librdkafka does not implement KIP-227: its fetches carry epoch -1 and open nothing."""
    own_broker.start()
    create_topic(own_broker.bootstrap, topic, partitions=PARTITIONS)
    values = [b"%d" % i for i in range(200)]
    confluent_produce(own_broker.bootstrap, topic, values, partitioner="consistent_random")
    consumer = Consumer({"bootstrap.servers": own_broker.bootstrap, "group.id": "unused",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 50})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    got: list[bytes] = []
    try:
        deadline = time.monotonic() + 20
        while len(got) < len(values) and time.monotonic() < deadline:
            msg = consumer.poll(1)
            if msg is not None and not msg.error():
                got.append(msg.value())
        # Idle fetches of a session: still nothing lost when more comes.
        confluent_produce(own_broker.bootstrap, topic, [b"late"])
        while b"late" not in got and time.monotonic() < deadline:
            msg = consumer.poll(1)
            if msg is not None and not msg.error():
                got.append(msg.value())
        assert sessions(own_broker) == 0
    finally:
        consumer.close()
    assert sorted(got) == sorted([*values, b"late"])


def test_kafka_python_consumer_uses_a_session(own_broker: InProcessBroker, topic: str) -> None:
    own_broker.start()
    create_topic(own_broker.bootstrap, topic, partitions=PARTITIONS)
    values = [b"%d" % i for i in range(200)]
    confluent_produce(own_broker.bootstrap, topic, values, partitioner="consistent_random")
    consumer = KafkaConsumer(bootstrap_servers=own_broker.bootstrap, enable_auto_commit=False,
                             fetch_max_wait_ms=50)
    consumer.assign([KafkaTopicPartition(topic, p) for p in range(PARTITIONS)])
    consumer.seek_to_beginning()
    got: list[bytes] = []
    try:
        deadline = time.monotonic() + 20
        while len(got) < len(values) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(r.value for r in records)
        confluent_produce(own_broker.bootstrap, topic, [b"late"])
        while b"late" not in got and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                got.extend(r.value for r in records)
        assert sessions(own_broker) == 1
    finally:
        consumer.close()
    assert sorted(got) == sorted([*values, b"late"])
