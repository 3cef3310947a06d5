"""Group tests run against brokers whose rebalances take moments: a short initial rebalance
delay and a low minimum session timeout, so a dead member is noticed in seconds."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, TopicPartition

from broker.conftest import RawClient, raw, topic
from brokerkit import BrokerProcess, InProcessBroker, broker, broker_process, own_broker

from .members import create_topic

__all__ = ["BrokerProcess", "InProcessBroker", "RawClient", "broker", "broker_process",
           "create_topic", "own_broker", "raw", "topic"]

@pytest.fixture(scope="session")
def broker_args() -> tuple[str, ...]:
    return ("--no-ui", "--group-initial-rebalance-delay-ms", "200",
            "--group-min-session-timeout-ms", "1000")  # members here use 3000


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Each partition's log end offset: what a consumer that read everything has consumed."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "end-offsets"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)}
    finally:
        consumer.close()
