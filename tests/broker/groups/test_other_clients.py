"""kcat's balanced consumer (-G), kafka-python's KafkaConsumer and aiokafka's AIOKafkaConsumer
in a group: each reads a topic, commits, and its next run resumes at the commit."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer
from kafka import KafkaConsumer

from broker.test_confluent import produce
from broker.test_kcat import kcat

from .conftest import InProcessBroker, create_topic
from .members import DEFAULT_SESSION_TIMEOUT_MS

PARTITIONS = 3
Records = set[tuple[int, int]]  # (partition, offset)


def run_kcat(broker: InProcessBroker, topic: str, group: str, count: int) -> Records:
    """Read to the end of every partition (-e), committing on the way out."""
    out = kcat(broker, "-G", group, "-X", "auto.offset.reset=earliest",
               "-X", f"session.timeout.ms={DEFAULT_SESSION_TIMEOUT_MS}", "-e", "-q",
               "-f", "%p %o\n", topic)
    records = {(int(p), int(o)) for p, o in (line.split() for line in out.splitlines())}
    assert len(records) == count
    return records


def run_kafka_python(broker: InProcessBroker, topic: str, group: str, count: int) -> Records:
    consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             session_timeout_ms=DEFAULT_SESSION_TIMEOUT_MS,
                             heartbeat_interval_ms=300, fetch_max_wait_ms=50)
    got: Records = set()
    try:
        while len(got) < count:
            polled = consumer.poll(timeout_ms=10_000, max_records=count - len(got))
            assert polled, f"no records after {len(got)} of {count}"
            got |= {(m.partition, m.offset) for batch in polled.values() for m in batch}
        consumer.commit()
    finally:
        consumer.close()
    return got


async def _aiokafka(bootstrap: str, topic: str, group: str, count: int) -> Records:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                session_timeout_ms=DEFAULT_SESSION_TIMEOUT_MS,
                                heartbeat_interval_ms=300, fetch_max_wait_ms=50)
    await consumer.start()
    got: Records = set()
    try:
        while len(got) < count:
            polled = await consumer.getmany(timeout_ms=10_000, max_records=count - len(got))
            assert polled, f"no records after {len(got)} of {count}"
            got |= {(m.partition, m.offset) for batch in polled.values() for m in batch}
        await consumer.commit()
    finally:
        await consumer.stop()
    return got


def run_aiokafka(broker: InProcessBroker, topic: str, group: str, count: int) -> Records:
    return asyncio.run(asyncio.wait_for(_aiokafka(broker.bootstrap, topic, group, count), 60))


needs_kcat = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")


@pytest.mark.parametrize("run", [pytest.param(run_kcat, marks=needs_kcat), run_kafka_python,
                                 run_aiokafka], ids=["kcat", "kafka-python", "aiokafka"])
def test_group_consumer_resumes_at_its_commit(
        broker: InProcessBroker, topic: str,
        run: Callable[[InProcessBroker, str, str, int], Records]) -> None:
    create_topic(broker.bootstrap, topic, PARTITIONS)
    produce(broker.bootstrap, topic, [b"a%d" % i for i in range(30)])
    first = run(broker, topic, "resumer", 30)
    produce(broker.bootstrap, topic, [b"b%d" % i for i in range(12)])
    second = run(broker, topic, "resumer", 12)
    assert not first & second
    assert {p for p, _ in first | second} == set(range(PARTITIONS))
