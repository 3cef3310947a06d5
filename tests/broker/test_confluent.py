"""confluent-kafka (librdkafka): compressed and idempotent producing, assign() consuming, admin."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from .conftest import InProcessBroker

FAST_CONSUMER = {"fetch.wait.max.ms": 50, "enable.auto.commit": False,
                 "group.id": "unused", "enable.partition.eof": True}


def produce(bootstrap: str, topic: str, values: list[bytes], **config: object) -> list[int]:
    """Produce and wait for every acknowledgement; return the offsets in order of `values`."""
    offsets: dict[int, int] = {}
    errors = []

    def delivered(err: object, msg: object) -> None:
        if err is not None:
            errors.append(err)
        else:
            offsets[int(msg.key())] = msg.offset()  # type: ignore[attr-defined]

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **config})
    for i, value in enumerate(values):
        producer.produce(topic, value, key=str(i).encode(), on_delivery=delivered)
    assert producer.flush(30) == 0
    assert not errors
    return [offsets[i] for i in range(len(values))]


def consume(bootstrap: str, topic: str, count: int, partition: int = 0, offset: int = 0
            ) -> list[tuple[int, bytes]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, **FAST_CONSUMER})
    consumer.assign([TopicPartition(topic, partition, offset)])
    got: list[tuple[int, bytes]] = []
    try:
        while len(got) < count:
            msg = consumer.poll(10)
            assert msg is not None, f"timed out after {len(got)} of {count} records"
            if msg.error():
                assert msg.error().code() == -191, msg.error()  # partition EOF: keep polling
                continue
            got.append((msg.offset(), msg.value()))
    finally:
        consumer.close()
    return got


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_round_trip(broker: InProcessBroker, topic: str, codec: str) -> None:
    values = [f"{codec} record {i} ".encode() * 5 for i in range(500)]
    offsets = produce(broker.bootstrap, topic, values, **{"compression.type": codec})
    assert offsets == list(range(500))
    assert consume(broker.bootstrap, topic, 500) == list(enumerate(values))


def test_idempotent_producer(broker: InProcessBroker, topic: str) -> None:
    values = [f"idempotent {i}".encode() for i in range(2000)]
    offsets = produce(broker.bootstrap, topic, values, **{
        "enable.idempotence": True, "acks": "all", "max.in.flight.requests.per.connection": 5,
        "batch.num.messages": 50})
    assert offsets == list(range(2000))
    assert [v for _, v in consume(broker.bootstrap, topic, 2000)] == values


def test_consume_from_the_middle_of_a_batch(broker: InProcessBroker, topic: str) -> None:
    produce(broker.bootstrap, topic, [b"a", b"b", b"c", b"d"], **{"linger.ms": 50})
    assert consume(broker.bootstrap, topic, 2, offset=2) == [(2, b"c"), (3, b"d")]


def test_admin_topics_and_configs(broker: InProcessBroker, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                            config={"retention.ms": "3600000"})],
                                  operation_timeout=10)
    futures[topic].result(10)
    with pytest.raises(KafkaException) as exc:
        admin.create_topics([NewTopic(topic, 1)])[topic].result(10)
    assert exc.value.args[0].name() == "TOPIC_ALREADY_EXISTS"

    metadata = admin.list_topics(timeout=10)
    assert sorted(metadata.topics[topic].partitions) == [0, 1, 2]

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["retention.ms"].value == "3600000"
    assert configs["retention.ms"].source == ConfigSource_TOPIC
    assert configs["cleanup.policy"].is_default

    change = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("max.message.bytes", "2000000",
                    incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE)])
    admin.incremental_alter_configs([change])[change].result(10)
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["max.message.bytes"].value == "2000000"
    assert configs["retention.ms"].value == str(7 * 24 * 3600 * 1000)

    admin.create_partitions([NewPartitions(topic, 5)])[topic].result(10)
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 5

    broker_res = ConfigResource(ConfigResource.Type.BROKER, "1")
    assert admin.describe_configs([broker_res])[broker_res].result(10)["num.partitions"].value \
        == "1"

    admin.delete_topics([topic], operation_timeout=10)[topic].result(10)
    assert topic not in admin.list_topics(timeout=10).topics


def test_admin_refuses_bad_topics(broker: InProcessBroker) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    bad = {"bad name!": NewTopic("bad name!", 1), "too-many-replicas": NewTopic(
        "too-many-replicas", 1, replication_factor=3)}
    futures = admin.create_topics(list(bad.values()))
    errors = {}
    for name, future in futures.items():
        with pytest.raises(KafkaException) as exc:
            future.result(10)
        errors[name] = exc.value.args[0].name()
    assert errors == {"bad name!": "TOPIC_EXCEPTION",  # librdkafka's name for code 17
                      "too-many-replicas": "INVALID_REPLICATION_FACTOR"}


ConfigSource_TOPIC = 1  # confluent_kafka.admin.ConfigSource.DYNAMIC_TOPIC_CONFIG.value
