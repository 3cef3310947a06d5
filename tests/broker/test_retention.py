"""Retention in a running broker: idle logs lose expired segments without any new append."""

from __future__ import annotations

import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from .conftest import InProcessBroker


def test_idle_log_loses_expired_segments(tmp_path: Path) -> None:
    broker = InProcessBroker(tmp_path / "data", "--log-retention-check-interval-ms", "200",
                             "--no-ui").start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        topic = NewTopic("expiring", 1, 1, config={"segment.bytes": "2000",
                                                   "retention.ms": "1500"})
        admin.create_topics([topic])["expiring"].result(timeout=10)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
        for i in range(60):
            producer.produce("expiring", b"x" * 100, key=str(i).encode())
            producer.flush(10)  # one batch each: many small segments
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "probe"})
        tp = TopicPartition("expiring", 0)
        low, high = consumer.get_watermark_offsets(tp, timeout=10)
        assert (low, high) == (0, 60)
        deadline = time.monotonic() + 15
        while low == 0 and time.monotonic() < deadline:  # nothing is appended meanwhile
            time.sleep(0.2)
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
        consumer.close()
        assert 0 < low < 60 and high == 60  # closed segments went; the active one stays
        assert "retention removed" in broker.log()
    finally:
        broker.stop()
