"""The course's Kafka example as two small programs, for any Kafka-compatible broker.

The producer makes sure the topic exists with one partition (so the three messages keep their
order for every reader), then sends them with key `Order123`, one a second. The consumer, in
group `loggers`, prints each as it arrives. The topic is `course-orders` by default, so it never
clashes with the shop's 3-partition `orders`.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from ..shop.clients import ensure_topics

TOPIC = "course-orders"
KEY = "Order123"
MESSAGES = ("Order created: #123", "Order paid: #123", "Order shipped: #123")


def run_producer(bootstrap: str, topic: str = TOPIC, interval: float = 1.0) -> int:
    ensure_topics(bootstrap, [topic], partitions=1)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True})
    for number, text in enumerate(MESSAGES):
        if number:
            time.sleep(interval)
        producer.produce(topic, text.encode(), KEY.encode())
        producer.flush(30)
        print(f"sent {text!r} with key {KEY!r}", flush=True)
    return 0


def run_consumer(bootstrap: str, topic: str = TOPIC, group: str = "loggers",
                 max_messages: int | None = None) -> int:
    """Print messages as they arrive, until Ctrl-C (or `max_messages`)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen = 0
    try:
        while max_messages is None or seen < max_messages:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue  # the producer has not created the topic yet
                raise KafkaException(error)
            key = (msg.key() or b"").decode()
            print(f"{key}: {(msg.value() or b'').decode()}", flush=True)
            seen += 1
    finally:
        consumer.close()
    return 0
