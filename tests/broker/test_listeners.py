"""Listeners as Kafka configures them (`listeners`, `advertised.listeners`): one broker, several
addresses, and each client told the address of the listener it came in on. That is what lets
containers use `minikafka:9092` while the host uses `localhost:29092`."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from kafka.protocol.metadata import FindCoordinatorRequest, MetadataRequest

from minikafka.shop.ports import free_port

from .conftest import InProcessBroker, RawClient


def _advertised(bootstrap: str) -> tuple[list[tuple[str, int]], tuple[str, int]]:
    """The brokers Metadata names, and the coordinator FindCoordinator names, through
    `bootstrap`."""
    raw = RawClient(bootstrap)
    try:
        metadata: Any = raw.request(MetadataRequest[12](
            topics=[], allow_auto_topic_creation=False,
            include_topic_authorized_operations=False))
        found: Any = raw.request(FindCoordinatorRequest[3](key="g", key_type=0))
    finally:
        raw.close()
    return [(b.host, b.port) for b in metadata.brokers], (found.host, found.port)


def test_each_listener_advertises_its_own_address(own_broker: InProcessBroker,
                                                  topic: str) -> None:
    inside, outside = free_port(), free_port()
    own_broker.extra = (
        *own_broker.extra,
        "--listeners", f"INTERNAL://127.0.0.1:{inside},HOST://127.0.0.1:{outside}",
        "--advertised-listeners", f"INTERNAL://minikafka.invalid:9092,HOST://localhost:{outside}",
        "--listener-security-protocol-map", "INTERNAL:PLAINTEXT,HOST:PLAINTEXT")
    own_broker.start()
    assert _advertised(f"127.0.0.1:{inside}") == ([("minikafka.invalid", 9092)],
                                                  ("minikafka.invalid", 9092))
    assert _advertised(f"127.0.0.1:{outside}") == ([("localhost", outside)],
                                                   ("localhost", outside))
    # A real client bootstrapped on the host listener produces and consumes through it.
    producer = Producer({"bootstrap.servers": f"127.0.0.1:{outside}"})
    producer.produce(topic, b"through the host listener")
    assert producer.flush(10) == 0
    consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{outside}", "group.id": "g",
                         "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([topic])
        message = None
        for _ in range(20):
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.value() == b"through the host listener"
    finally:
        consumer.close()


@pytest.mark.parametrize(("args", "message"), [
    (["--listeners", "PLAINTEXT://127.0.0.1:0,PLAINTEXT://127.0.0.1:0"], "twice"),
    (["--listeners", "127.0.0.1:9092"], "NAME://HOST:PORT"),
    (["--listeners", "PLAINTEXT://127.0.0.1:0", "--advertised-listeners", "OTHER://h:1"],
     "OTHER"),
    (["--listeners", "SSL://127.0.0.1:0"], "SSL"),
    (["--listeners", "INTERNAL://127.0.0.1:0"], "INTERNAL"),
])
def test_bad_listeners_are_refused_at_start(own_broker: InProcessBroker, args: list[str],
                                            message: str) -> None:
    own_broker.extra = (*own_broker.extra, *args)
    with pytest.raises((RuntimeError, ValueError), match=message):
        own_broker.start()
