"""Transactions in embedded mode: the read_committed consumer, `Producer.transaction()`, its
fencing and its crash safety, against real data directories and real processes."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import TopicPartition

from brokerkit import InProcessBroker
from minikafka import Consumer, Producer
from minikafka.errors import InvalidTxnStateError, ProducerFencedError
from minikafka.log import LogManager
from minikafka.records import encode_batch

from .test_embedded import drain


def _txn_batch(pid: int, seq: int, *values: bytes) -> bytes:
    return encode_batch([(None, v, (), None) for v in values], producer_id=pid, producer_epoch=0,
                        base_sequence=seq, transactional=True)


def test_read_committed_consumer_stops_at_the_lso_and_skips_aborted_records(tmp_path: Path
                                                                           ) -> None:
    """Committed and aborted transactions interleaved with plain records and an open one: a
    read_committed consumer returns the plain and committed records below the LSO, a
    read_uncommitted one everything, neither a marker."""
    log = LogManager(tmp_path)
    log.create_topic("t", 1)
    p = log.partition("t", 0)
    p.append(encode_batch([(None, b"plain", (), None)]))
    p.append(_txn_batch(1, 0, b"c1"))
    p.append(_txn_batch(2, 0, b"a1"))
    p.append(_txn_batch(1, 1, b"c2"))
    p.append(_txn_batch(2, 1, b"a2"))
    p.write_marker(2, 0, False, 0)
    p.write_marker(1, 0, True, 0)
    p.append(_txn_batch(3, 0, b"open"))
    p.append(encode_batch([(None, b"after-open", (), None)]))

    def read(level: str) -> list[bytes | None]:
        with Consumer(tmp_path, "t", auto_offset_reset="earliest",
                      isolation_level=level) as consumer:
            return [m.value for m in drain(consumer)]

    assert read("read_committed") == [b"plain", b"c1", b"c2"]
    assert read("read_uncommitted") == [b"plain", b"c1", b"a1", b"c2", b"a2", b"open",
                                        b"after-open"]
    p.write_marker(3, 0, True, 0)
    assert read("read_committed") == [b"plain", b"c1", b"c2", b"open", b"after-open"]
    log.close()


def committed(data_dir: Path, level: str = "read_committed") -> list[bytes | None]:
    with Consumer(data_dir, "t", auto_offset_reset="earliest",
                  isolation_level=level) as consumer:
        return sorted(m.value for m in drain(consumer, idle=0.2))


def send_both(producer: Producer, *values: str) -> None:
    for value in values:
        for p in (0, 1):
            producer.send("t", f"{value}/{p}", partition=p)


def test_commit_and_abort_across_two_partitions(tmp_path: Path) -> None:
    with Producer(tmp_path, transactional_id="tx", default_partitions=2) as producer:
        with producer.transaction():
            send_both(producer, "c1", "c2")
            assert committed(tmp_path) == []  # nothing before the commit
        with pytest.raises(RuntimeError), producer.transaction():
            send_both(producer, "a1")
            raise RuntimeError("the exception aborts and goes on")
        with producer.transaction():
            pass  # an empty transaction is no error
        with producer.transaction():
            send_both(producer, "c3")
    assert committed(tmp_path) == [b"c1/0", b"c1/1", b"c2/0", b"c2/1", b"c3/0", b"c3/1"]
    assert committed(tmp_path, "read_uncommitted") == [
        b"a1/0", b"a1/1", b"c1/0", b"c1/1", b"c2/0", b"c2/1", b"c3/0", b"c3/1"]


def test_a_transactional_producer_sends_in_a_transaction_only(tmp_path: Path) -> None:
    with Producer(tmp_path, transactional_id="tx") as producer, \
            pytest.raises(InvalidTxnStateError, match="transaction"):
        producer.send("t", b"outside")
    with Producer(tmp_path) as producer, pytest.raises(ValueError, match="transactional_id"), \
            producer.transaction():
        pass


def test_a_zombie_is_fenced_and_its_open_transaction_aborted(tmp_path: Path) -> None:
    zombie = Producer(tmp_path, transactional_id="tx", default_partitions=2)
    with pytest.raises(ProducerFencedError), zombie.transaction():
        zombie.send("t", b"zombie-before", partition=0)
        # The successor's first transaction fences the zombie and aborts its transaction.
        with Producer(tmp_path, transactional_id="tx") as successor, successor.transaction():
            send_both(successor, "successor")
        zombie.send("t", b"zombie-after", partition=0)  # raises: the log knows the new epoch
    with pytest.raises(ProducerFencedError), zombie.transaction():
        zombie.send("t", b"zombie-new-partition", partition=1)  # raises: the coordinator
    zombie.close()
    assert committed(tmp_path) == [b"successor/0", b"successor/1"]


def test_a_transaction_that_times_out_is_aborted_when_a_producer_opens_the_directory(
        tmp_path: Path) -> None:
    slow = Producer(tmp_path, transactional_id="slow", transaction_timeout_ms=100,
                    default_partitions=2)
    with pytest.raises(ProducerFencedError), slow.transaction():
        send_both(slow, "late")
        time.sleep(0.2)
        Producer(tmp_path).close()  # opening the directory aborts it, fencing `slow`
    slow.close()
    with Producer(tmp_path) as plain:
        plain.send("t", b"plain", partition=0)
    assert committed(tmp_path) == [b"plain"]  # not held back by the aborted transaction


WORKER = textwrap.dedent("""
    import os, signal, sys
    from minikafka import Producer
    from minikafka.log import Partition

    data_dir, mode, prefix = sys.argv[1:4]

    def send_both(producer, value):
        for p in (0, 1):
            producer.send("t", f"{value}/{p}", partition=p)

    def kill():
        os.kill(os.getpid(), signal.SIGKILL)

    producer = Producer(data_dir, transactional_id="tx", default_partitions=2)
    with producer.transaction():
        send_both(producer, f"{prefix}-first")
    if mode == "after-first-marker":
        write_marker = Partition.write_marker
        def write_marker_and_die(self, *args):
            write_marker(self, *args)
            kill()
        Partition.write_marker = write_marker_and_die
    print("ready", flush=True)
    n = 0
    while True:
        with producer.transaction():
            send_both(producer, f"{prefix}-{n}")
            send_both(producer, f"{prefix}-{n}-more")
            if mode == "before-commit":
                kill()
        n += 1
""")


def run_worker(data_dir: Path, mode: str, prefix: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", WORKER, str(data_dir), mode, prefix],
                            stdout=subprocess.PIPE, text=True)


def by_transaction(values: list[bytes]) -> Counter[str]:
    """Records seen per transaction: each must be all (four records on two partitions, two for
    a worker's first) or nothing."""
    per_txn = Counter(v.decode().split("/")[0].removesuffix("-more") for v in values)
    assert all(n == (2 if t.endswith("first") else 4) for t, n in per_txn.items()), per_txn
    return per_txn


def recover_and_check(data_dir: Path) -> set[str]:
    """A new producer with the id aborts what was left ongoing; then every transaction is all
    or nothing, for the embedded consumer and for a broker started on the directory (its
    read_committed Fetch). The transactions seen."""
    with Producer(data_dir, transactional_id="tx") as producer, producer.transaction():
        pass
    seen = committed(data_dir)
    assert broker_read_committed(data_dir) == seen
    return set(by_transaction([v for v in seen if v]))


def broker_read_committed(data_dir: Path) -> list[bytes]:
    broker = InProcessBroker(data_dir).start()
    try:
        consumer = KafkaConsumer({"bootstrap.servers": broker.bootstrap, "group.id": "check",
                                  "isolation.level": "read_committed",
                                  "enable.partition.eof": True, "enable.auto.commit": False})
        consumer.assign([TopicPartition("t", p, 0) for p in (0, 1)])
        from_broker: list[bytes] = []
        eof: set[int] = set()
        deadline = time.monotonic() + 10
        while len(eof) < 2 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                eof.add(message.partition())
            else:
                from_broker.append(message.value())
        consumer.close()
    finally:
        assert broker.stop() == 0
    return sorted(from_broker)


@pytest.mark.parametrize("mode, outcome", [("after-first-marker", "committed"),
                                           ("before-commit", "aborted")])
def test_a_producer_killed_mid_transaction_leaves_all_or_nothing(tmp_path: Path, mode: str,
                                                                 outcome: str) -> None:
    """SIGKILLed after the COMMIT marker of one partition of two (PrepareCommit stored: the
    commit is finished on recovery), or with the transaction still open (aborted)."""
    worker = run_worker(tmp_path, mode, "k")
    assert worker.wait(timeout=30) == -signal.SIGKILL
    assert committed(tmp_path, "read_uncommitted").count(b"k-0/0") == 1
    seen = recover_and_check(tmp_path)
    assert ("k-0" in seen) == (outcome == "committed")
    assert "k-first" in seen


def test_a_broker_finishes_a_commit_a_killed_producer_began(tmp_path: Path) -> None:
    """No embedded producer opens the directory after the kill: the broker finishes the
    PrepareCommit when it starts, before its read_committed Fetch answers."""
    worker = run_worker(tmp_path, "after-first-marker", "k")
    assert worker.wait(timeout=30) == -signal.SIGKILL
    seen = broker_read_committed(tmp_path)
    assert set(by_transaction(seen)) == {"k-first", "k-0"}
    assert committed(tmp_path) == seen


def test_producers_killed_at_random_leave_every_transaction_all_or_nothing(
        tmp_path: Path) -> None:
    rng = random.Random(12)
    for round_ in range(4):
        worker = run_worker(tmp_path, "loop", f"r{round_}")
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.05, 0.4))
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    seen = recover_and_check(tmp_path)
    assert {f"r{n}-first" for n in range(4)} <= seen
