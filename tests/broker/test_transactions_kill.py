"""Transactions and SIGKILL (issue 12): a broker killed mid-transaction, a broker restarted with
a transaction prepared but its markers unwritten, and a consume-transform-produce loop killed
again and again that must end with every input reflected exactly once in its output."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from confluent_kafka import Producer

from minikafka.log.manager import META
from minikafka.txn.coordinator import TxnState
from minikafka.txn.log import TransactionLog

from .conftest import BrokerProcess, InProcessBroker, create_topic
from .test_transactions import describe, read_all, transactional, wait_for_state
from .txn_worker import RECORDS

SOAK_FACTOR = int(os.environ.get("MINIKAFKA_SOAK_FACTOR", "1"))  # `make soak` raises it
WORKER = Path(__file__).with_name("txn_worker.py")


def test_a_broker_killed_mid_transaction_aborts_it_after_restart(
        broker_process: BrokerProcess) -> None:
    broker_process.extra += ("--transaction-abort-timed-out-transaction-cleanup-interval-ms",
                             "100")
    broker_process.start()
    topic = create_topic(broker_process.bootstrap, "killed", partitions=2)
    producer = transactional(broker_process.bootstrap, "killed-tx",
                             **{"transaction.timeout.ms": 2000})
    producer.begin_transaction()
    for i in range(10):
        producer.produce(topic, b"committed %d" % i, partition=i % 2)
    producer.commit_transaction(30)
    producer.begin_transaction()
    for i in range(10):
        producer.produce(topic, b"open %d" % i, partition=i % 2)
    producer.flush(10)
    broker_process.stop(signal.SIGKILL)
    broker_process.start()
    # The open transaction is still open (its producer may yet end it), then times out.
    found = wait_for_state(broker_process.bootstrap, "killed-tx", "CompleteAbort")
    assert found.transaction_state == "CompleteAbort"  # type: ignore[attr-defined]
    assert sorted(read_all(broker_process.bootstrap, topic, "read_committed", 2)) == sorted(
        b"committed %d" % i for i in range(10))
    del producer


def test_a_broker_killed_again_and_again_under_commits_leaves_whole_transactions(
        broker_process: BrokerProcess) -> None:
    """SIGKILL the broker at random moments under a producer committing 2-partition
    transactions back to back (so some kills land between PrepareCommit and the markers, or
    between the two markers): after each restart every acknowledged transaction is whole, and
    every other one is whole or absent, never half visible."""
    kills = 3 * SOAK_FACTOR
    broker_process.start()
    topic = create_topic(broker_process.bootstrap, "committing", partitions=2)
    rng = random.Random(topic)
    acknowledged: set[int] = set()
    for round_ in range(kills):
        writer = subprocess.Popen(
            [sys.executable, str(WORKER), "write", broker_process.bootstrap, topic, "writer",
             str(round_ * 1_000_000)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        assert writer.stdout is not None
        lines = [writer.stdout.readline() for _ in range(rng.randint(1, 40))]
        while not lines[-1].startswith("sent"):
            lines.append(writer.stdout.readline())
        time.sleep(rng.random() * 0.0005)  # EndTxn (~0.4 ms) is on its way, or being handled
        broker_process.stop(signal.SIGKILL)
        writer.kill()
        lines += writer.stdout.read().splitlines()
        acknowledged.update(int(line.split()[1]) for line in lines
                            if line.startswith("committed"))
        writer.wait()
        writer.stdout.close()
        broker_process.start()
    # The next instance of the producer aborts what the last one left open.
    transactional(broker_process.bootstrap, "writer")
    seen = Counter(int(value.split(b":")[0])
                   for value in read_all(broker_process.bootstrap, topic, "read_committed", 2))
    partial = {n: count for n, count in seen.items() if count != RECORDS}
    written = {int(value.split(b":")[0])
               for value in read_all(broker_process.bootstrap, topic, "read_uncommitted", 2)}
    print(f"broker kills: {kills}, {len(acknowledged)} transactions acknowledged, "
          f"{len(seen)} visible ({len(set(seen) - acknowledged)} of them unacknowledged), "
          f"{len(written - set(seen))} aborted, {len(partial)} partial")
    assert partial == {}
    assert acknowledged <= set(seen)


def test_a_prepared_commit_is_completed_on_start(own_broker: InProcessBroker) -> None:
    """A broker that stopped after storing PrepareCommit but before its markers (as a SIGKILL
    there leaves it) writes the markers when it starts: the whole transaction is visible."""
    own_broker.start()
    topic = create_topic(own_broker.bootstrap, "prepared", partitions=2)
    producer = transactional(own_broker.bootstrap, "prepared-tx")
    producer.begin_transaction()
    for i in range(6):
        producer.produce(topic, b"r%d" % i, partition=i % 2)
    producer.flush(10)
    own_broker.stop()
    txn_log = TransactionLog.in_meta_dir(own_broker.data_dir / META)
    (ongoing,) = txn_log.transactions()
    txn_log.write(replace(ongoing, state=TxnState.PREPARE_COMMIT))
    txn_log.close()
    own_broker.start()
    assert describe(own_broker.bootstrap, "prepared-tx").transaction_state \
        == "CompleteCommit"  # type: ignore[attr-defined]
    assert sorted(read_all(own_broker.bootstrap, topic, "read_committed", 2)) == sorted(
        b"r%d" % i for i in range(6))
    del producer


def test_consume_transform_produce_killed_again_and_again_is_exactly_once(
        broker: InProcessBroker, topic: str) -> None:
    inputs, kills = 300 * SOAK_FACTOR, 5 * SOAK_FACTOR
    source, sink = create_topic(broker.bootstrap, topic), f"{topic}.out"
    create_topic(broker.bootstrap, sink)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(inputs):
        producer.produce(source, b"%d" % i)
    assert producer.flush(30) == 0
    rng = random.Random(topic)
    argv = [sys.executable, str(WORKER), "process", broker.bootstrap, source, sink,
            f"{topic}-g", f"{topic}-tx"]
    killed = 0
    started = time.monotonic()
    while True:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
        if killed < kills:
            # Kill it a few transactions in, at a random moment: with its records on the
            # broker, while it commits offsets, while it commits...
            assert proc.stdout is not None
            for _ in range(rng.randint(1, 12)):
                if not proc.stdout.readline():
                    break
            time.sleep(rng.random() * 0.003)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed += 1
            continue
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        break
    outputs = read_all(broker.bootstrap, sink, "read_committed")
    counts = Counter(outputs)
    expected = {b"out:%d" % i for i in range(inputs)}
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    missing = len(expected - set(counts))
    aborted = len(read_all(broker.bootstrap, sink, "read_uncommitted")) - len(outputs)
    print(f"kill loop: {killed} kills, {inputs} inputs, {len(outputs)} outputs, "
          f"{duplicates} duplicates, {missing} missing ({aborted} records of aborted "
          f"transactions skipped), {time.monotonic() - started:.1f} s")
    assert (duplicates, missing, set(counts) - expected) == (0, 0, set())
