"""kafka-python 3.x: producer, consumer by assign(), admin client."""

from __future__ import annotations

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from .conftest import InProcessBroker


def test_produce_and_consume(broker: InProcessBroker, topic: str) -> None:
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=5,
                             compression_type="gzip", acks="all")
    futures = [producer.send(topic, key=b"k%d" % i, value=b"v%d" % i) for i in range(300)]
    producer.flush(20)
    assert [f.get(10).offset for f in futures] == list(range(300))
    producer.close(5)

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                             fetch_max_wait_ms=50, consumer_timeout_ms=5000)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, 100)
    got = [(m.offset, m.key, m.value) for _, m in zip(range(200), consumer, strict=False)]
    consumer.close()
    assert got == [(i, b"k%d" % i, b"v%d" % i) for i in range(100, 300)]


def test_admin(broker: InProcessBroker, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1, topic_configs={"cleanup.policy": "delete"})])
    assert topic in admin.list_topics()
    described = admin.describe_topics([topic])
    assert [p["partition_index"] for p in described[0]["partitions"]] == [0, 1]
    result = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                   config_filter="all")
    assert "retention.ms" in str(result)
    admin.delete_topics([topic])
    assert topic not in admin.list_topics()
    admin.close()
