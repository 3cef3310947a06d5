"""Kafka clients configured the way every shop process needs them (any Kafka-compatible broker)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from .events import ALL_TOPICS, PARTITIONS


def make_producer(bootstrap: str, client_id: str,
                  delivery_timeout_ms: int = 300_000) -> Producer:
    """Idempotent with acks=all: a retried send is written once, and only when durable. A
    record not acknowledged within `delivery_timeout_ms` (librdkafka's default: 5 minutes) is
    reported failed. A batch waits up to 5 ms for more records (librdkafka's default, Kafka's
    since 4.0): at 1,000 orders/s, 2 ms cost the shop 7 % more CPU per order in Produce
    requests and the fetches they wake, and a wider p99 (59-96 ms against 65-69 ms)."""
    return Producer({
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "delivery.timeout.ms": delivery_timeout_ms,
    })


def make_consumer(bootstrap: str, group: str, client_id: str,
                  session_timeout_ms: int = 10_000) -> Consumer:
    """Manual commits only: a service commits after its database transaction, never before."""
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": client_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": session_timeout_ms,
        "heartbeat.interval.ms": max(100, session_timeout_ms // 4),
        "fetch.wait.max.ms": 100,
        "topic.metadata.refresh.interval.ms": 5000,
    })


def ensure_topics(bootstrap: str, topics: Iterable[str] = ALL_TOPICS,
                  partitions: int = PARTITIONS, timeout: float = 30.0) -> None:
    """Create the topics that do not exist yet (3 partitions, the cluster's replication factor).

    Done before any client touches a topic: a broker that auto-creates topics would otherwise
    create it with its own default partition count. Retries while the broker is starting.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    wanted = list(topics)
    deadline = time.monotonic() + timeout
    while True:
        try:
            existing = set(admin.list_topics(timeout=5).topics)
            missing = [t for t in wanted if t not in existing]
            futures = admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=-1) for t in missing],
                operation_timeout=10) if missing else {}
            for future in futures.values():
                try:
                    future.result()
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                        raise
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
