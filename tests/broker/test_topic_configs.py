"""Every topic config Kafka defines, through confluent-kafka's AdminClient: accepted, validated,
stored, described (default, source, synonyms, documentation), and acted on where one node can."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
)
from kafka.protocol.admin import DescribeConfigsRequest

from minikafka.compression import Compression
from minikafka.log.config import TOPIC_CONFIGS
from minikafka.records import Record, decode_batch, encode_batch

from .conftest import InProcessBroker, RawClient, create_topic
from .test_bad_input import partition_error, produce_request
from .test_semantics import fetch

# A non-default value for each config, as a tool setting it would write it.
SET = {
    "cleanup.policy": "compact,delete", "compression.type": "zstd",
    "compression.gzip.level": "5", "compression.lz4.level": "10", "compression.zstd.level": "7",
    "delete.retention.ms": "1000", "file.delete.delay.ms": "1000", "flush.messages": "100",
    "flush.ms": "1000", "follower.replication.throttled.replicas": "0:1,1:1",
    "leader.replication.throttled.replicas": "*", "index.interval.bytes": "1024",
    "local.retention.bytes": "1000", "local.retention.ms": "1000",
    "max.compaction.lag.ms": "100000", "max.message.bytes": "2000000",
    "message.timestamp.after.max.ms": "100000", "message.timestamp.before.max.ms": "100000",
    "message.timestamp.difference.max.ms": "100000", "message.timestamp.type": "LogAppendTime",
    "min.cleanable.dirty.ratio": "0.25", "min.compaction.lag.ms": "10",
    "min.insync.replicas": "2", "preallocate": "true", "remote.storage.enable": "false",
    "remote.log.copy.disable": "true", "remote.log.delete.on.disable": "true",
    "retention.bytes": "1000000", "retention.ms": "100000", "segment.bytes": "1000000",
    "segment.index.bytes": "100000", "segment.jitter.ms": "10", "segment.ms": "100000",
    "unclean.leader.election.enable": "true",
}
INVALID = [
    ("retention.ms", "-2"), ("retention.ms", "soon"), ("segment.bytes", "3000000000"),
    ("cleanup.policy", "compact,forever"), ("compression.type", "brotli"),
    ("min.cleanable.dirty.ratio", "1.5"), ("min.insync.replicas", "0"), ("preallocate", "yes"),
    ("compression.gzip.level", "0"), ("leader.replication.throttled.replicas", "0-1"),
    ("remote.storage.enable", "true"), ("message.downconversion.enable", "true"),
    ("no.such.config", "1"),
]


def _admin(broker: InProcessBroker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def _describe(admin: AdminClient, resource: ConfigResource) -> dict[str, ConfigEntry]:
    entries: dict[str, ConfigEntry] = admin.describe_configs([resource])[resource].result(10)
    return entries


def test_the_table_covers_every_config_named_in_the_issue() -> None:
    assert set(SET) == set(TOPIC_CONFIGS)


def test_every_config_round_trips_through_the_admin_client(broker: InProcessBroker,
                                                          topic: str) -> None:
    admin = _admin(broker)
    admin.create_topics([NewTopic(topic, 1, 1, config=SET)])[topic].result(10)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    described = _describe(admin, resource)
    assert {name: e.value for name, e in described.items()} == SET
    retention = described["retention.ms"]
    assert retention.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert [(s.name, s.source) for s in retention.synonyms.values()] == [
        ("retention.ms", ConfigSource.DYNAMIC_TOPIC_CONFIG.value),
        ("log.retention.ms", ConfigSource.DEFAULT_CONFIG.value)]

    # back to the defaults, one incremental DELETE each
    ops = [ConfigEntry(name, None, incremental_operation=AlterConfigOpType.DELETE)
           for name in SET]
    admin.incremental_alter_configs([ConfigResource(
        ConfigResource.Type.TOPIC, topic, incremental_configs=ops)])[resource].result(10)
    described = _describe(admin, resource)
    assert {name: e.value for name, e in described.items()} == {
        name: key.text(key.default) for name, key in TOPIC_CONFIGS.items()}
    assert all(e.is_default and e.source == ConfigSource.DEFAULT_CONFIG.value
               for e in described.values())

    set_op = ConfigEntry("min.cleanable.dirty.ratio", "0.75",
                         incremental_operation=AlterConfigOpType.SET)
    admin.incremental_alter_configs([ConfigResource(
        ConfigResource.Type.TOPIC, topic, incremental_configs=[set_op])])[resource].result(10)
    assert _describe(admin, resource)["min.cleanable.dirty.ratio"].value == "0.75"


def test_documentation_is_returned_when_asked(raw: RawClient, broker: InProcessBroker,
                                             topic: str) -> None:
    """librdkafka never asks for it (DescribeConfigs v1): a raw v4 request does."""
    create_topic(broker.bootstrap, topic)
    described = {}
    for asked in (True, False):
        cls = DescribeConfigsRequest[4]
        response: Any = raw.request(cls(resources=[cls.DescribeConfigsResource(
            resource_type=2, resource_name=topic, configuration_keys=["retention.ms"])],
            include_synonyms=False, include_documentation=asked))
        described[asked] = response.results[0].configs[0]
    assert "segments are deleted" in described[True].documentation
    assert described[True].config_type == 5  # LONG
    assert described[False].documentation is None


@pytest.mark.parametrize("name, value", INVALID)
def test_invalid_values_are_refused_naming_the_key(broker: InProcessBroker, topic: str,
                                                   name: str, value: str) -> None:
    admin = _admin(broker)
    with pytest.raises(KafkaException) as caught:
        admin.create_topics([NewTopic(topic, 1, 1, config={name: value})])[topic].result(10)
    error = caught.value.args[0]
    assert error.code() == KafkaError.INVALID_CONFIG and name in error.str()


def test_broker_configs_are_described_under_kafka_names(broker: InProcessBroker) -> None:
    described = _describe(_admin(broker), ConfigResource(ConfigResource.Type.BROKER, "1"))
    assert described["node.id"].value == described["num.partitions"].value == "1"
    assert described["log.retention.ms"].value == "604800000"
    assert described["log.cleanup.policy"].value == "delete"
    assert described["auto.create.topics.enable"].value == "true"


def test_topic_defaults_set_on_the_broker_are_described_as_its(own_broker: InProcessBroker,
                                                               topic: str) -> None:
    """A topic config left unset takes the broker's value, as Kafka's LogConfig does: described
    as STATIC_BROKER_CONFIG with the broker config as its synonym; a topic's own value still
    wins, and an unset one the broker leaves alone is Kafka's default."""
    own_broker.extra = (*own_broker.extra, "--log-cleaner-delete-retention-ms", "3600000",
                        "--log-cleaner-min-cleanable-ratio", "0.25")
    admin = _admin(own_broker.start())
    admin.create_topics([NewTopic(topic, 1, 1, config={"min.cleanable.dirty.ratio": "0.9"})]
                        )[topic].result(10)
    described = _describe(admin, ConfigResource(ConfigResource.Type.TOPIC, topic))
    retention = described["delete.retention.ms"]
    assert (retention.value, retention.source) == ("3600000",
                                                  ConfigSource.STATIC_BROKER_CONFIG.value)
    ratio = described["min.cleanable.dirty.ratio"]
    assert (ratio.value, ratio.source) == ("0.9", ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    # The synonyms, highest first (librdkafka keeps one per name: asked raw)
    raw = RawClient(own_broker.bootstrap)
    try:
        cls = DescribeConfigsRequest[4]
        response: Any = raw.request(cls(resources=[cls.DescribeConfigsResource(
            resource_type=2, resource_name=topic, configuration_keys=[
                "delete.retention.ms", "min.cleanable.dirty.ratio"])],
            include_synonyms=True, include_documentation=False))
    finally:
        raw.close()
    static, default = ConfigSource.STATIC_BROKER_CONFIG.value, ConfigSource.DEFAULT_CONFIG.value
    assert {c.name: [(s.name, s.value, s.source) for s in c.synonyms]
            for c in response.results[0].configs} == {
        "delete.retention.ms": [("log.cleaner.delete.retention.ms", "3600000", static),
                                ("log.cleaner.delete.retention.ms", "86400000", default)],
        "min.cleanable.dirty.ratio": [
            ("min.cleanable.dirty.ratio", "0.9", ConfigSource.DYNAMIC_TOPIC_CONFIG.value),
            ("log.cleaner.min.cleanable.ratio", "0.25", static),
            ("log.cleaner.min.cleanable.ratio", "0.5", default)]}
    lag = described["min.compaction.lag.ms"]
    assert (lag.value, lag.source) == ("0", ConfigSource.DEFAULT_CONFIG.value)
    on_broker = _describe(admin, ConfigResource(ConfigResource.Type.BROKER, "1"))
    assert on_broker["log.cleaner.delete.retention.ms"].value == "3600000"
    assert on_broker["log.cleaner.delete.retention.ms"].source == \
        ConfigSource.STATIC_BROKER_CONFIG.value


def test_a_broker_default_a_topic_would_refuse_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"log.cleaner.min.cleanable.ratio: invalid value 3.0 "
                       r"for min.cleanable.dirty.ratio: must be in \[0, 1\]"):
        InProcessBroker(tmp_path / "data", "--log-cleaner-min-cleanable-ratio", "3").start()


def test_min_insync_replicas_above_one_refuses_acks_all(broker: InProcessBroker,
                                                        topic: str) -> None:
    """One replica is never enough for min.insync.replicas=2: acks=all fails as in Kafka, while
    acks=1 is served."""
    admin = _admin(broker)
    admin.create_topics([NewTopic(topic, 1, 1, config={"min.insync.replicas": "2"})]
                        )[topic].result(10)
    errors: list[KafkaError | None] = []
    for acks in ("all", "1"):
        producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": acks,
                             "message.send.max.retries": 0, "delivery.timeout.ms": 3000})
        producer.produce(topic, b"v", on_delivery=lambda err, _msg: errors.append(err))
        producer.flush(10)
    assert errors[0] is not None and errors[0].code() == KafkaError.NOT_ENOUGH_REPLICAS
    assert errors[1] is None


def test_timestamps_outside_the_window_are_refused(broker: InProcessBroker, topic: str) -> None:
    admin = _admin(broker)
    admin.create_topics([NewTopic(topic, 1, 1, config={
        "message.timestamp.before.max.ms": "60000", "message.timestamp.after.max.ms": "60000"})]
    )[topic].result(10)
    now = int(time.time() * 1000)
    errors: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0,
                         "message.send.max.retries": 0})
    for ts in (now, now - 3_600_000, now + 3_600_000):
        producer.produce(topic, b"v", timestamp=ts,
                         on_delivery=lambda err, _msg: errors.append(err))
        producer.flush(10)
    assert errors[0] is None
    assert [e.code() if e else None for e in errors[1:]] == [KafkaError.INVALID_TIMESTAMP] * 2


@pytest.mark.parametrize("setting, sent, stored", [
    ("gzip", Compression.NONE, Compression.GZIP), ("uncompressed", Compression.LZ4,
                                                   Compression.NONE),
    ("producer", Compression.SNAPPY, Compression.SNAPPY), ("zstd", Compression.ZSTD,
                                                            Compression.ZSTD)])
def test_compression_type_recompresses_on_the_broker(raw: RawClient, broker: InProcessBroker,
                                                     topic: str, setting: str,
                                                     sent: Compression, stored: Compression
                                                     ) -> None:
    admin = _admin(broker)
    admin.create_topics([NewTopic(topic, 1, 1, config={"compression.type": setting})]
                        )[topic].result(10)
    records = [Record(b"value %d" % i, b"k%d" % i, timestamp=1000 + i) for i in range(20)]
    assert partition_error(raw.request(produce_request(topic, encode_batch(
        records, compression=sent, producer_id=5, producer_epoch=0, base_sequence=0)))) == 0
    batch = decode_batch(fetch(raw, topic, 0).records)  # type: ignore[attr-defined]
    assert batch.header.compression == stored
    assert (batch.header.producer_id, batch.header.base_sequence) == (5, 0)
    assert [(r.key, r.value, r.timestamp, r.offset) for r in batch.records] == [
        (r.key, r.value, r.timestamp, i) for i, r in enumerate(records)]
