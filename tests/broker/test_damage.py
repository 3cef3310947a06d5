"""Damaged files under a running broker: what is intact stays served to real clients, the damage
is reported loudly (log line, metric), and nothing else is given up."""

from __future__ import annotations

import struct
import urllib.request
from pathlib import Path

from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, NewTopic

from brokerkit import InProcessBroker

from .test_confluent import consume, produce


def batch_positions(segment: Path) -> list[int]:
    raw, pos, found = segment.read_bytes(), 0, []
    while pos < len(raw):
        found.append(pos)
        pos += struct.unpack_from(">i", raw, pos + 8)[0] + 12
    return found


def test_a_bad_length_in_an_older_segment_loses_only_its_batch(tmp_path: Path) -> None:
    broker = InProcessBroker(tmp_path / "data", "--ui-port", "0").start()
    try:
        broker_topic(broker)
        values = [b"record %02d" % i for i in range(60)]
        for i in range(0, 60, 5):  # 12 batches of 5, about 3 to a segment
            assert produce(broker.bootstrap, "t", values[i:i + 5], acks="all") == [
                *range(i, i + 5)]
        broker.stop()
        segments = sorted((tmp_path / "data" / "t-0").glob("*.log"))
        assert len(segments) >= 3 and len(batch_positions(segments[1])) >= 3
        victim = segments[1]
        lost = range(int(victim.name[:-4]) + 5, int(victim.name[:-4]) + 10)  # its second batch
        with open(victim, "r+b") as f:
            f.seek(batch_positions(victim)[1] + 8)
            f.write(struct.pack(">i", 30))  # shorter than any batch
        broker.start()
        got = consume(broker.bootstrap, "t", 55)
        assert got == [(i, values[i]) for i in range(60) if i not in lost]
        assert victim.name in broker.log() and "WARNING" in broker.log()
        assert broker.console_url is not None
        with urllib.request.urlopen(broker.console_url + "metrics", timeout=10) as answer:
            metrics = answer.read().decode()
        assert 'minikafka_log_damaged_bytes_total{partition="0",topic="t"}' in metrics
        line = next(m for m in metrics.splitlines()
                    if m.startswith('minikafka_log_damaged_bytes_total{partition="0",topic="t"}'))
        assert float(line.split()[-1]) > 0
        assert produce(broker.bootstrap, "t", [b"after"]) == [60]
    finally:
        assert broker.stop() in (0, None)


def broker_topic(broker: InProcessBroker) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("t", 1, config={"segment.bytes": "600"})])["t"].result(10)


def test_a_damaged_topic_config_breaks_only_that_topic(tmp_path: Path) -> None:
    broker = InProcessBroker(tmp_path / "data", "--no-ui").start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for name, partitions in (("good", 1), ("bad", 2)):
            admin.create_topics([NewTopic(name, partitions)])[name].result(10)
        assert produce(broker.bootstrap, "good", [b"kept"]) == [0]
        broker.stop()
        config = tmp_path / "data" / "__meta" / "topics" / "bad.json"
        config.write_bytes(config.read_bytes()[:7])  # truncated
        broker.start()
        assert "bad.json" in broker.log()
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        listed = admin.list_topics(timeout=10).topics
        assert len(listed["good"].partitions) == 1 and listed["good"].error is None
        assert listed["bad"].error is not None
        assert listed["bad"].error.code() == KafkaError.KAFKA_STORAGE_ERROR
        assert admin.list_topics("bad", timeout=10).topics["bad"].error is not None
        assert consume(broker.bootstrap, "good", 1) == [(0, b"kept")]
        assert produce(broker.bootstrap, "good", [b"more"]) == [1]
    finally:
        assert broker.stop() in (0, None)
