"""The shop under test: a real broker, the services as real processes, real clients."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from brokerkit import InProcessBroker
from minikafka.shop.clients import ensure_topics
from minikafka.shop.events import PARTITIONS, decode, use_registry
from minikafka.shop.inventory import write_catalogue
from minikafka.shop.monitor import BrokerProbe
from minikafka.shop.settings import ShopPaths
from minikafka.shop.stack import ShopStack

# Quick first rebalance and quick takeover of a killed member's partitions.
BROKER_ARGS = ("--group-initial-rebalance-delay-ms", "100", "--group-min-session-timeout-ms",
               "1000", "--num-partitions", "3", "--no-ui")
SERVICE_ARGS = ("--session-timeout-ms", "2000")


def start_broker(path: Path) -> InProcessBroker:
    broker = InProcessBroker(path, *BROKER_ARGS).start()
    ensure_topics(broker.bootstrap)
    return broker


def start_shop(root: Path, broker: InProcessBroker, products: dict[str, int],
               **extra: list[str]) -> ShopStack:
    """The API and the three services on `broker` and its schema registry, with a catalogue of
    `products` (id -> stock). This process encodes and decodes through that registry too."""
    assert broker.registry_url is not None
    use_registry(broker.registry_url)
    catalogue = write_catalogue(root / "catalogue.json", products)
    options = {"inventory": ["--catalogue", str(catalogue)], **extra}
    return ShopStack(ShopPaths(root), broker.bootstrap, broker.registry_url,
                     service_args=SERVICE_ARGS, extra=options).start()


@pytest.fixture
def shop_broker(tmp_path: Path) -> Iterator[InProcessBroker]:
    broker = start_broker(tmp_path / "broker")
    yield broker
    broker.stop()


@pytest.fixture
def probe(shop_broker: InProcessBroker) -> Iterator[BrokerProbe]:
    probe = BrokerProbe(shop_broker.bootstrap)
    yield probe
    probe.close()


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def event_of(record: Message) -> dict[str, Any]:
    """A shop record's event as JSON data, decoded through the registry."""
    return decode(record.topic() or "", record.value()).model_dump(mode="json")


def read_topic(bootstrap: str, topic: str) -> list[Message]:
    """Every record of `topic` up to its current end, without joining a group."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "shop-tests",
                         "enable.auto.commit": False})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)
                for p in range(PARTITIONS)}
        wanted = sum(high - low for low, high in ends.values())
        consumer.assign([TopicPartition(topic, p, low) for p, (low, _) in ends.items()])
        records: list[Message] = []
        deadline = time.monotonic() + 30
        while len(records) < wanted and time.monotonic() < deadline:
            # Records appended since the ends were read are not this read's.
            records += [m for m in consumer.consume(1000, timeout=0.5)
                        if not m.error() and m.offset() < ends[m.partition()][1]]
        assert len(records) == wanted, f"read {len(records)} of {wanted} records of {topic}"
        return records
    finally:
        consumer.close()
