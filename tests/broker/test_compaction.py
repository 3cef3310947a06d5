"""Compaction as real consumers see it: the broker's cleaner thread on a compacted topic, read
back with kcat and confluent-kafka."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from .conftest import InProcessBroker

SEGMENT_MS = 300  # the active segment rolls when a record comes this long after its first


@pytest.fixture
def cleaning_broker(tmp_path: Path) -> Iterator[InProcessBroker]:
    broker = InProcessBroker(tmp_path / "data", "--log-cleaner-backoff-ms", "50",
                             "--ui-port", "0").start()
    yield broker
    assert broker.stop() == 0
    print(broker.log())


def create_compacted(broker: InProcessBroker, name: str, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic = NewTopic(name, 1, 1, config={
        "cleanup.policy": "compact", "segment.bytes": "1000", "segment.ms": str(SEGMENT_MS),
        "min.cleanable.dirty.ratio": "0.01", **configs})
    admin.create_topics([topic])[name].result(timeout=10)


def produce(broker: InProcessBroker, topic: str, rows: list[tuple[str, str | None]]) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for key, value in rows:
        producer.produce(topic, None if value is None else value.encode(), key=key.encode())
        producer.flush(10)  # one batch each: many small segments


def roll(broker: InProcessBroker, topic: str, key: str) -> None:
    """Close the active segment (segment.ms), so what it holds becomes cleanable."""
    time.sleep(SEGMENT_MS * 1.5 / 1000)
    produce(broker, topic, [(key, "1")])


def kcat_table(broker: InProcessBroker, topic: str) -> list[str]:
    out = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", topic, "-e", "-Z", "-f",
                          "%k=%s\n"], capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.splitlines()


def consume_all(broker: InProcessBroker, topic: str) -> list[tuple[str, bytes | None]]:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "reader",
                         "enable.auto.commit": False})
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        out: list[tuple[str, bytes | None]] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            out.append((msg.key().decode(), msg.value()))
            if msg.offset() == high - 1:
                return out
        raise AssertionError(f"did not reach the end of {topic}: {out}")
    finally:
        consumer.close()


def cleaner_metrics(broker: InProcessBroker) -> dict[str, float]:
    assert broker.console_url is not None
    with urllib.request.urlopen(broker.console_url + "metrics", timeout=10) as response:
        text = response.read().decode()
    return {m[0]: float(m[1]) for m in re.findall(r"^minikafka_log_cleaner_(\w+) (\S+)$", text,
                                                   re.MULTILINE)}


def wait_for(read: Callable[[], list[str]], expected: list[str], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while (got := read()) != expected:
        assert time.monotonic() < deadline, f"still {got}"
        time.sleep(0.1)


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
@pytest.mark.parametrize("retention_set_on", ["topic", "broker"])
def test_consumers_see_latest_values_then_tombstones_then_nothing(
        cleaning_broker: InProcessBroker, retention_set_on: str) -> None:
    """delete.retention.ms set on the topic, or as the broker's default for topics."""
    broker = cleaning_broker
    if retention_set_on == "topic":
        create_compacted(broker, "table", **{"delete.retention.ms": "1500"})
    else:
        broker.extra = (*broker.extra, "--log-cleaner-delete-retention-ms", "1500")
        broker.restart()
        create_compacted(broker, "table")
    produce(broker, "table", [(f"k{k}", f"v{r}-k{k}".ljust(40, ".")) for r in range(10)
                              for k in range(6)])
    produce(broker, "table", [("k3", None)])
    roll(broker, "table", "end")
    latest = [f"k{k}=v9-k{k}".ljust(43, ".") for k in range(6) if k != 3]
    wait_for(lambda: kcat_table(broker, "table"), [*latest, "k3=NULL", "end=1"])
    rows = consume_all(broker, "table")
    assert rows == [*((line[:2], line[3:].encode()) for line in latest), ("k3", None),
                    ("end", b"1")]
    time.sleep(1.5)  # delete.retention.ms after the pass that first cleaned the tombstone
    roll(broker, "table", "end2")  # something dirty: the next pass runs
    wait_for(lambda: kcat_table(broker, "table"), [*latest, "end=1", "end2=1"])


def test_a_changelog_is_restored_after_a_restart(cleaning_broker: InProcessBroker) -> None:
    broker = cleaning_broker
    create_compacted(broker, "store-changelog")
    expected: dict[str, bytes] = {}
    rows: list[tuple[str, str | None]] = []
    for n in range(200):
        key = f"item-{n * 7 % 23}"
        value = None if n % 11 == 0 else f"count={n}"
        rows.append((key, value))
        if value is None:
            expected.pop(key, None)
        else:
            expected[key] = value.encode()
    produce(broker, "store-changelog", rows)
    roll(broker, "store-changelog", "item-last")
    expected["item-last"] = b"1"
    deadline = time.monotonic() + 15
    while len(consume_all(broker, "store-changelog")) > 40:  # 24 keys and a few tombstones
        assert time.monotonic() < deadline, "not compacted"
        time.sleep(0.1)
    metrics = cleaner_metrics(broker)
    assert metrics["bytes_total"] > 0 and metrics["records_removed_total"] >= 200 - 40
    assert abs(metrics["last_run_timestamp_seconds"] - time.time()) < 60
    broker.restart()
    table: dict[str, bytes] = {}
    for key, value in consume_all(broker, "store-changelog"):  # a state store's restore
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    assert table == expected
