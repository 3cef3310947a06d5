"""Consumer groups over the wire: how long a rebalance stops consumption, and commits per second.

What is measured, against a `minikafka serve` subprocess on a temporary directory:
- rebalance: three confluent-kafka members (processes, from the group tests' harness) share a
  12-partition topic that a producer keeps writing to. One member goes away at t0, either by
  SIGKILL (no LeaveGroup: the coordinator notices when its session, 6 s, Kafka's minimum, runs
  out) or by closing its consumer (a LeaveGroup: the rebalance starts at once). Reported: t0 to
  the survivors owning every partition, and t0 to a survivor consuming a record from each of the
  partitions the member had (the last of those), with the range and cooperative-sticky assignors.
  Survivors hear of a rebalance on their next heartbeat (every 600 ms, a tenth of the session).
- commit: one confluent-kafka group member committing one partition's offset, synchronously
  (each commit waits for its answer: latency-bound) and asynchronously (pipelined, then waited
  for), with flush `never` and `always` (then every commit is fsynced before its answer).
Clocks are `time.monotonic()`, which is one clock for every process on the machine.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from rich.table import Table
from tests.broker.groups.members import MemberProcess, create_topic, partitions_split, wait_until

from minikafka.shop.processes import BrokerProcess

PARTITIONS = 12
SESSION_TIMEOUT_MS = 6000
COMMITS = {"never": (3000, 20_000), "always": (2000, 10_000)}  # (synchronous, pipelined)


@contextmanager
def running_broker(*flags: str) -> Iterator[BrokerProcess]:
    with tempfile.TemporaryDirectory(prefix="bench-groups-") as tmp:
        broker = BrokerProcess(Path(tmp) / "data", "--no-ui", "--log-level", "WARNING",
                               "--group-initial-rebalance-delay-ms", "100", *flags).start()
        try:
            yield broker
        finally:
            broker.stop()


@contextmanager
def steady_producer(bootstrap: str, topic: str, per_second: int = 2000) -> Iterator[None]:
    """Keep every partition receiving records, so a new owner always has something to read."""
    stop = threading.Event()

    def produce() -> None:
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
        sent = 0
        while not stop.is_set():
            producer.produce(topic, b"x" * 100, partition=sent % PARTITIONS)
            producer.poll(0)
            sent += 1
            time.sleep(1 / per_second)
        producer.flush(10)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(15)


def rebalance(bootstrap: str, assignor: str, kill: bool) -> tuple[float, float]:
    """(seconds to a full reassignment, seconds until the gone member's partitions are read)."""
    topic = f"rebalance-{assignor}-{'kill' if kill else 'leave'}"
    create_topic(bootstrap, topic, PARTITIONS)
    with steady_producer(bootstrap, topic):
        members = [MemberProcess(bootstrap, topic, topic, assignor=assignor,
                                 session_timeout_ms=SESSION_TIMEOUT_MS, client_id=f"m{i}")
                   for i in range(3)]
        try:
            wait_until(lambda: partitions_split(members, PARTITIONS), 30, "3 members share")
            time.sleep(1)  # everyone consuming
            victim, survivors = members[0], members[1:]
            orphans = victim.snapshot()[0]
            t0 = time.monotonic()
            if kill:
                victim.kill()
            else:
                victim.stop()
            wait_until(lambda: partitions_split(survivors, PARTITIONS), 60,
                       "survivors own everything")
            assigned = max(e["t"] for m in survivors for e in m.events
                           if e["ev"] == "assign" and e["t"] > t0) - t0

            def first_read(partition: int) -> float | None:
                times = [t for m in survivors for p, _, t in m.consumed
                         if p == partition and t > t0]
                return min(times, default=None)

            wait_until(lambda: all(first_read(p) for p in orphans), 30, "orphans read again")
            resumed = max(first_read(p) or 0 for p in orphans) - t0
            return assigned, resumed
        finally:
            for member in members:
                member.stop()


def commit_rate(bootstrap: str, synchronous: bool, count: int) -> float:
    topic = group = f"commits-{'sync' if synchronous else 'async'}"
    create_topic(bootstrap, topic, 1)
    done = threading.Semaphore(0)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False,
                         "on_commit": lambda err, parts: done.release()})
    consumer.subscribe([topic])
    try:
        while not consumer.assignment():
            consumer.poll(0.1)
        started = time.perf_counter()
        for i in range(count):
            consumer.commit(offsets=[TopicPartition(topic, 0, i)],
                            asynchronous=not synchronous)
        if not synchronous:
            for _ in range(count):
                while not done.acquire(timeout=0.01):
                    consumer.poll(0)  # serves the commit callbacks
        return count / (time.perf_counter() - started)
    finally:
        consumer.close()


def run() -> list[Table]:
    rebalances = Table(title=f"Rebalance: 3 members, {PARTITIONS} partitions, one goes "
                       f"(session timeout {SESSION_TIMEOUT_MS} ms)")
    for column in ("assignor", "member goes by", "all owned again", "its partitions read"):
        rebalances.add_column(column, justify="right")
    with running_broker() as broker:
        for assignor in ("range", "cooperative-sticky"):
            for kill in (False, True):
                assigned, resumed = rebalance(broker.bootstrap, assignor, kill)
                rebalances.add_row(assignor, "SIGKILL" if kill else "LeaveGroup",
                                   f"{assigned * 1000:.0f} ms", f"{resumed * 1000:.0f} ms")

    commits = Table(title="OffsetCommit: one member, one partition per commit")
    for column in ("flush", "synchronous commits/s", "pipelined commits/s"):
        commits.add_column(column, justify="right")
    for flush, (sync_count, async_count) in COMMITS.items():
        with running_broker("--flush", flush) as broker:
            commits.add_row(flush, f"{commit_rate(broker.bootstrap, True, sync_count):,.0f}",
                            f"{commit_rate(broker.bootstrap, False, async_count):,.0f}")
    return [rebalances, commits]
