"""Transactions over the wire (issue 12): what exactly-once costs.

What is measured, against a `minikafka serve` subprocess on a temporary directory (flush
`never` unless said), with confluent-kafka and 100-byte records:
- produce: records/s of a transactional producer committing every 1,000 records, beside the same
  producer without a transactional id (idempotent, acks=all, as transactions imply).
- EndTxn: the latency of `commit_transaction()` for a transaction of one record already
  delivered (so it is the EndTxn round trip: the PrepareCommit write, the markers, the
  CompleteCommit write), p50 and p99; also with flush `always` (three group-committed fsyncs:
  the PrepareCommit record, the markers, the CompleteCommit record).
- consume: records/s reading a topic of committed transactions (one marker per 1,000 records)
  with read_committed beside read_uncommitted; the clock starts at the first record.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition
from rich.table import Table
from tests.broker.groups.members import create_topic

from bench.broker import KAFKA_CONSUMER
from bench.groups import running_broker

RECORDS = 500_000
PER_TRANSACTION = 1_000
END_TXNS = 300
VALUE = b"x" * 100
PRODUCER = {"linger.ms": 5, "batch.size": 1_000_000, "acks": "all",
            "queue.buffering.max.messages": 1_000_000, "enable.idempotence": True}


def produce_rate(bootstrap: str, topic: str, transactional: bool) -> float:
    config: dict[str, object] = {"bootstrap.servers": bootstrap, **PRODUCER}
    if transactional:
        config["transactional.id"] = f"bench-{topic}"
    producer = Producer(config)
    if transactional:
        producer.init_transactions(30)
    started = time.perf_counter()
    for _ in range(RECORDS // PER_TRANSACTION):
        if transactional:
            producer.begin_transaction()
        for _ in range(PER_TRANSACTION):
            producer.produce(topic, VALUE)
        producer.poll(0)
        if transactional:
            producer.commit_transaction(30)
    assert producer.flush(60) == 0
    return RECORDS / (time.perf_counter() - started)


def end_txn_latencies(bootstrap: str, topic: str) -> list[float]:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "bench-endtxn",
                         "linger.ms": 0})
    producer.init_transactions(30)
    latencies = []
    for _ in range(END_TXNS):
        producer.begin_transaction()
        producer.produce(topic, VALUE)
        producer.flush(30)
        started = time.perf_counter()
        producer.commit_transaction(30)
        latencies.append(time.perf_counter() - started)
    return sorted(latencies)


def consume_rate(bootstrap: str, topic: str, isolation: str) -> float:
    consumer = Consumer({"bootstrap.servers": bootstrap, **KAFKA_CONSUMER,
                         "isolation.level": isolation})
    consumer.assign([TopicPartition(topic, 0, 0)])
    first = consumer.consume(num_messages=1, timeout=30)
    started = time.perf_counter()
    got = sum(1 for m in first if not m.error())
    deadline = time.monotonic() + 120
    while got < RECORDS and time.monotonic() < deadline:
        # What is there already; if nothing, wait for one record (as bench.broker's reader).
        batch = consumer.consume(num_messages=100_000, timeout=0) or consumer.consume(
            num_messages=1, timeout=0.1)
        got += sum(1 for m in batch if not m.error())
    elapsed = time.perf_counter() - started
    consumer.close()
    assert got == RECORDS, f"{isolation}: {got} of {RECORDS} records"
    return RECORDS / elapsed


def _percentile(values: list[float], p: float) -> float:
    return values[min(int(len(values) * p), len(values) - 1)]


def run() -> list[Table]:
    produce = Table(title=f"Produce: {RECORDS:,} records of {len(VALUE)} B, acks=all, "
                    "idempotent")
    for column in ("producer", "records/s"):
        produce.add_column(column, justify="right")
    end_txn = Table(title=f"EndTxn (commit_transaction of one delivered record), {END_TXNS} "
                    "transactions")
    for column in ("flush", "p50", "p99"):
        end_txn.add_column(column, justify="right")
    consume = Table(title=f"Consume {RECORDS:,} committed records "
                    f"({PER_TRANSACTION:,} per transaction)")
    for column in ("isolation.level", "records/s"):
        consume.add_column(column, justify="right")
    with running_broker() as broker:
        bootstrap = broker.bootstrap
        for topic in ("plain", "txn", "endtxn"):
            create_topic(bootstrap, topic, 1)
        produce.add_row("plain", f"{produce_rate(bootstrap, 'plain', False):,.0f}")
        produce.add_row(f"transactional ({PER_TRANSACTION:,} per commit)",
                        f"{produce_rate(bootstrap, 'txn', True):,.0f}")
        _end_txn_row(end_txn, "never", bootstrap)
        for isolation in ("read_uncommitted", "read_committed"):
            consume.add_row(isolation, f"{consume_rate(bootstrap, 'txn', isolation):,.0f}")
    with running_broker("--flush", "always") as broker:
        create_topic(broker.bootstrap, "endtxn", 1)
        _end_txn_row(end_txn, "always", broker.bootstrap)
    return [produce, end_txn, consume]


def _end_txn_row(table: Table, flush: str, bootstrap: str) -> None:
    latencies = end_txn_latencies(bootstrap, "endtxn")
    table.add_row(flush, f"{_percentile(latencies, 0.5) * 1000:.2f} ms",
                  f"{_percentile(latencies, 0.99) * 1000:.2f} ms")
