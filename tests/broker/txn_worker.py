"""Transactional clients for the kill tests, one role per process run:

`python txn_worker.py process BOOTSTRAP SOURCE SINK GROUP TRANSACTIONAL_ID`: a
consume-transform-produce loop with exactly-once semantics. Reads SOURCE (read_committed, from
the group's committed offset), and for every few records writes `out:<value>` to SINK and
commits the source offsets in the same transaction (send_offsets_to_transaction). Exits once a
poll finds nothing more to do for 2 s. A SIGKILL at any moment must leave every input
reflected exactly once in SINK after the next instance (same transactional id) is done.

`python txn_worker.py write BOOTSTRAP TOPIC TRANSACTIONAL_ID FIRST`: transactions FIRST,
FIRST+1... of RECORDS records `<n>:<i>`, spread over partitions 0 and 1, committed one after
the other. The broker is killed under it: every committed transaction must be whole after the
restart, every other one whole or absent.

Both print "sent <n>" once a transaction's records are on the broker and "committed <n>" after
its commit (flushed), so that a kill can aim at either moment.
"""

from __future__ import annotations

import sys

from confluent_kafka import Consumer, Producer, TopicPartition

BATCH = 7  # records per transaction (process)
RECORDS = 10  # records per transaction (write)


def process(bootstrap: str, source: str, sink: str, group: str, transactional_id: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                         "linger.ms": 2})
    producer.init_transactions(30)  # fences the killed instance, aborts its open transaction
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "fetch.wait.max.ms": 20})
    committed = consumer.committed([TopicPartition(source, 0)], 30)[0].offset
    consumer.assign([TopicPartition(source, 0, max(committed, 0))])
    idle = 0
    while idle < 20:
        messages = [m for m in consumer.consume(BATCH, timeout=0.1) if not m.error()]
        if not messages:
            idle += 1
            continue
        idle = 0
        producer.begin_transaction()
        for message in messages:
            producer.produce(sink, b"out:" + message.value())
        next_offset = messages[-1].offset() + 1
        producer.flush(30)
        print(f"sent {next_offset}", flush=True)
        producer.send_offsets_to_transaction([TopicPartition(source, 0, next_offset)],
                                             consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
        print(f"committed {next_offset}", flush=True)
    consumer.close()


def write(bootstrap: str, topic: str, transactional_id: str, first: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                         "linger.ms": 1})
    producer.init_transactions(30)
    n = int(first)
    while True:
        producer.begin_transaction()
        for i in range(RECORDS):
            producer.produce(topic, b"%d:%d" % (n, i), partition=i % 2)
        producer.flush(30)
        print(f"sent {n}", flush=True)
        producer.commit_transaction(30)
        print(f"committed {n}", flush=True)
        n += 1


if __name__ == "__main__":
    {"process": process, "write": write}[sys.argv[1]](*sys.argv[2:])
