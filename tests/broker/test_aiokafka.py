"""aiokafka: producer, and a consumer using assign() and seek() (no group)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from .conftest import InProcessBroker


async def _round_trip(bootstrap: str, topic: str) -> list[tuple[int, bytes]]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, compression_type="lz4",
                                enable_idempotence=True)
    await producer.start()
    try:
        batch = [producer.send(topic, b"aio %d" % i) for i in range(200)]
        sent = await asyncio.gather(*[await f for f in batch])
    finally:
        await producer.stop()
    assert sorted(r.offset for r in sent) == list(range(200))

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=50)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 50)
        got: list[tuple[int, bytes]] = []
        while len(got) < 150:
            batches = await consumer.getmany(tp, timeout_ms=5000)
            assert batches, f"no records after {len(got)}"
            got += [(m.offset, m.value) for m in batches[tp]]
        return got
    finally:
        await consumer.stop()


def test_produce_and_consume(broker: InProcessBroker, topic: str) -> None:
    got = asyncio.run(asyncio.wait_for(_round_trip(broker.bootstrap, topic), 60))
    assert got == [(i, b"aio %d" % i) for i in range(50, 200)]
