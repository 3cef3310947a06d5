"""A consume-transform-produce loop with exactly-once semantics, for the kill tests:
`python txn_processor.py BOOTSTRAP SOURCE SINK GROUP TRANSACTIONAL_ID`.

Reads SOURCE (read_committed, from the group's committed offset), and for every few records
writes `out:<value>` to SINK and commits the source offsets in the same transaction
(send_offsets_to_transaction). Prints "sent <n>" once a transaction's records are on the broker
and "committed <n>" after its commit (flushed), so a kill can aim at either moment; exits
once a poll finds nothing more to do for 2 s. A SIGKILL at any moment must leave every input
reflected exactly once in SINK after the next instance (same transactional id) is done.
"""

from __future__ import annotations

import sys

from confluent_kafka import Consumer, Producer, TopicPartition

BATCH = 7  # records per transaction


def main(bootstrap: str, source: str, sink: str, group: str, transactional_id: str) -> None:
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


if __name__ == "__main__":
    main(*sys.argv[1:6])
