"""read_committed on the wire: transactional batches produced raw, markers written through the
broker's partition, and real consumers (confluent-kafka, kafka-python, aiokafka) that see committed
records only under read_committed, every data record under read_uncommitted, never a marker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as AioTopicPartition
from confluent_kafka import Consumer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.protocol.admin import DescribeProducersRequest
from kafka.protocol.consumer import ListOffsetsRequest

from minikafka.log import Partition
from minikafka.records import encode_batch
from minikafka.txn.coordinator import Transit, TxnState

from .conftest import InProcessBroker, RawClient, create_topic
from .test_bad_input import partition_error, produce_request

FAST = {"fetch.wait.max.ms": 50, "enable.auto.commit": False, "group.id": "unused",
        "enable.partition.eof": True}
COMMITTED = [b"a0", b"a1", b"a2", b"p0"]
EVERYTHING = [b"a0", b"a1", b"a2", b"b0", b"b1", b"b2", b"p0", b"c0"]


@pytest.fixture
def topic(topic: str, broker: InProcessBroker) -> str:
    return create_topic(broker.bootstrap, topic)


def partition(broker: InProcessBroker, topic: str) -> Partition:
    assert broker.server is not None and broker.server.broker.ctx is not None
    return broker.server.broker.ctx.log.partition(topic, 0)


def begin(broker: InProcessBroker, topic: str, pid: int) -> None:
    """What InitProducerId and AddPartitionsToTxn leave in the coordinator, so that Produce
    lets producer `pid`'s transactional batch in (the markers are written by hand)."""
    assert broker.server is not None and broker.server.broker.ctx is not None
    now = int(time.time() * 1000)
    broker.server.broker.ctx.transactions.coordinator.load(Transit(
        f"tx-{pid}", pid, 0, -1, -1, 60_000, TxnState.ONGOING, frozenset({(topic, 0)}), now, now))


def produce(raw: RawClient, topic: str, values: list[bytes], pid: int = -1) -> None:
    """One batch, transactional when it has a producer id, produced raw (Produce v7)."""
    batch = encode_batch([(None, v, (), None) for v in values], producer_id=pid,
                         producer_epoch=0 if pid >= 0 else -1, base_sequence=0 if pid >= 0 else -1,
                         transactional=pid >= 0)
    assert partition_error(raw.request(produce_request(topic, batch))) == 0


def transactions(broker: InProcessBroker, raw: RawClient, topic: str) -> Partition:
    """Offsets 0-2 committed (producer 101, marker 3), 4-6 aborted (102, marker 7), 8 plain, 9
    open (103): LSO 9, high watermark 10."""
    part = partition(broker, topic)
    for pid in (101, 102, 103):
        begin(broker, topic, pid)
    produce(raw, topic, [b"a0", b"a1", b"a2"], pid=101)
    part.write_marker(101, 0, True, 0)
    produce(raw, topic, [b"b0", b"b1", b"b2"], pid=102)
    part.write_marker(102, 0, False, 0)
    produce(raw, topic, [b"p0"])
    produce(raw, topic, [b"c0"], pid=103)
    assert (part.last_stable_offset, part.high_watermark) == (9, 10)
    return part


def consume(bootstrap: str, topic: str, isolation: str) -> list[bytes]:
    """Every record up to the end the consumer is allowed to see (its partition EOF)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "isolation.level": isolation, **FAST})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got: list[bytes] = []
    try:
        while True:
            msg = consumer.poll(10)
            assert msg is not None, f"timed out after {got}"
            if msg.error():
                assert msg.error().code() == -191, msg.error()  # partition EOF: the end
                return got
            got.append(msg.value())
    finally:
        consumer.close()


def list_latest(raw: RawClient, topic: str, isolation: int) -> int:
    cls = ListOffsetsRequest[5]
    response = raw.request(cls(replica_id=-1, isolation_level=isolation, topics=[
        cls.ListOffsetsTopic(name=topic, partitions=[cls.ListOffsetsTopic.ListOffsetsPartition(
            partition_index=0, current_leader_epoch=-1, timestamp=-1)])]))
    answer = response.topics[0].partitions[0]  # type: ignore[attr-defined]
    assert answer.error_code == 0
    return int(answer.offset)


def test_confluent_read_committed_sees_committed_records_only(
        broker: InProcessBroker, raw: RawClient, topic: str) -> None:
    part = transactions(broker, raw, topic)
    assert list_latest(raw, topic, 0) == 10
    assert list_latest(raw, topic, 1) == 9                  # the LSO while 103's is open
    assert consume(broker.bootstrap, topic, "read_committed") == COMMITTED
    assert consume(broker.bootstrap, topic, "read_uncommitted") == EVERYTHING
    part.write_marker(103, 0, True, 0)
    assert list_latest(raw, topic, 0) == list_latest(raw, topic, 1) == 11
    assert consume(broker.bootstrap, topic, "read_committed") == [*COMMITTED, b"c0"]


def kafka_python_reads(bootstrap: str, topic: str, isolation: str, end: int) -> list[bytes]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             fetch_max_wait_ms=50, isolation_level=isolation)
    tp = KafkaTopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, 0)
    got: list[bytes] = []
    deadline = time.monotonic() + 10
    while consumer.position(tp) < end and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            got += [r.value for r in records]
    consumer.close()
    return got


def aiokafka_reads(bootstrap: str, topic: str, isolation: str, end: int) -> list[bytes]:
    async def main() -> list[bytes]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                    fetch_max_wait_ms=50, isolation_level=isolation)
        await consumer.start()
        try:
            tp = AioTopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            got: list[bytes] = []
            while await consumer.position(tp) < end:
                batches = await consumer.getmany(tp, timeout_ms=200)
                got += [m.value for m in batches.get(tp, [])]
            return got
        finally:
            await consumer.stop()
    return asyncio.run(asyncio.wait_for(main(), 10))


@pytest.mark.parametrize("reads", [kafka_python_reads, aiokafka_reads],
                         ids=["kafka-python", "aiokafka"])
def test_python_clients_read_committed_skip_aborts_and_markers(
        broker: InProcessBroker, raw: RawClient, topic: str,
        reads: Callable[[str, str, str, int], list[bytes]]) -> None:
    transactions(broker, raw, topic).write_marker(103, 0, False, 0)
    got = {isolation: reads(broker.bootstrap, topic, isolation, 11)
           for isolation in ("read_committed", "read_uncommitted")}
    assert got == {"read_committed": COMMITTED, "read_uncommitted": EVERYTHING}


def test_describe_producers_shows_ongoing_transactions(
        broker: InProcessBroker, raw: RawClient, topic: str) -> None:
    transactions(broker, raw, topic)
    cls = DescribeProducersRequest[0]
    response = raw.request(cls(topics=[cls.TopicRequest(name=topic, partition_indexes=[0, 7])]))
    known, missing = response.topics[0].partitions  # type: ignore[attr-defined]
    assert missing.error_code != 0 and known.error_code == 0
    states = {p.producer_id: (p.producer_epoch, p.last_sequence, p.current_txn_start_offset)
              for p in known.active_producers}
    assert states == {101: (0, 2, -1), 102: (0, 2, -1), 103: (0, 0, 9)}
