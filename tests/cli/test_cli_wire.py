"""The CLI's topics / produce / consume commands over the wire, against a real broker."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import InProcessBroker, mk


def test_topics_over_the_wire(broker: InProcessBroker, topic: str) -> None:
    created = mk(broker, "topics", "create", topic, "--partitions", "3", "--config",
                 "retention.ms=60000")
    assert created.returncode == 0, created.stderr
    assert topic in mk(broker, "topics", "list").stdout.split()
    described = mk(broker, "topics", "describe", topic).stdout
    assert "3 partition(s)" in described and "retention.ms=60000" in described
    again = mk(broker, "topics", "create", topic)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    assert mk(broker, "topics", "delete", topic).returncode == 0
    assert topic not in mk(broker, "topics", "list").stdout.split()


def test_produce_then_consume_over_the_wire(broker: InProcessBroker, topic: str) -> None:
    produced = mk(broker, "produce", topic, "-K", ":", "--partitions", "1",
                  stdin="".join(f"k{i}:v{i}\n" for i in range(20)))
    assert produced.returncode == 0, produced.stderr
    consumed = mk(broker, "consume", topic, "--from-beginning", "-e", "-f", "%p %o %k=%s\\n")
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.splitlines()[:2] == ["0 0 k0=v0", "0 1 k1=v1"]
    assert len(consumed.stdout.splitlines()) == 20


def test_consume_as_a_group_over_the_wire_resumes(broker: InProcessBroker, topic: str) -> None:
    mk(broker, "produce", topic, stdin="".join(f"v{i}\n" for i in range(20)))
    first = mk(broker, "consume", topic, "-G", "cli-g", "--from-beginning", "-c", "5")
    assert first.stdout.split() == [f"v{i}" for i in range(5)]
    rest = mk(broker, "consume", topic, "-G", "cli-g", "-e")
    assert rest.stdout.split() == [f"v{i}" for i in range(5, 20)]


def test_embedded_and_wire_agree_on_placement(broker: InProcessBroker, topic: str,
                                              tmp_path) -> None:
    """The murmur2 partitioner over the wire (librdkafka's murmur2_random) and in-process place
    keys identically; crc32 matches librdkafka's default."""
    keys = [f"order-{i}" for i in range(30)]
    lines = "".join(f"{k}:x\n" for k in keys)
    for partitioner in ("murmur2", "crc32"):
        name = f"{topic}-{partitioner}"
        assert mk(broker, "topics", "create", name, "--partitions", "4").returncode == 0
        mk(broker, "produce", name, "-K", ":", "--partitioner", partitioner, stdin=lines)
        wire = mk(broker, "consume", name, "--from-beginning", "-e", "-f", "%k %p\\n").stdout
        local = subprocess.run(
            [sys.executable, "-m", "minikafka", "produce", name, "-K", ":", "--partitions", "4",
             "--partitioner", partitioner, "--data-dir", str(tmp_path)],
            input=lines, capture_output=True, text=True, timeout=60)
        assert local.returncode == 0, local.stderr
        here = subprocess.run(
            [sys.executable, "-m", "minikafka", "consume", name, "--from-beginning", "-e", "-f",
             "%k %p\\n", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert sorted(wire.splitlines()) == sorted(here.stdout.splitlines())


def test_wire_errors_are_one_line(broker: InProcessBroker) -> None:
    missing = mk(broker, "consume", "no-such-topic-here", "-e")
    assert missing.returncode == 1 and "unknown topic" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    both = subprocess.run([sys.executable, "-m", "minikafka", "topics", "list", "-b",
                           broker.bootstrap, "--data-dir", "x"], capture_output=True, text=True,
                          timeout=60)
    assert both.returncode == 1 and "not both" in both.stderr


def test_unreachable_broker_is_one_line() -> None:
    result = subprocess.run([sys.executable, "-m", "minikafka", "topics", "list", "-b",
                             "127.0.0.1:1"], capture_output=True, text=True, timeout=90)
    assert result.returncode == 1
    # Refused by every bootstrap server: said at once, with the reason (not after a timeout).
    assert "cannot reach a Kafka broker at 127.0.0.1:1: Connection refused" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_alter_and_cluster_over_the_wire(broker: InProcessBroker, topic: str) -> None:
    assert mk(broker, "topics", "create", topic).returncode == 0
    altered = mk(broker, "topics", "alter", topic, "--partitions", "3", "--config",
                 "retention.ms=1000")
    assert altered.returncode == 0, altered.stderr
    assert "3 partition(s); retention.ms=1000" in mk(broker, "topics", "describe", topic).stdout
    cluster = mk(broker, "cluster", "describe").stdout
    assert "mode: broker" in cluster and f"@{broker.bootstrap}" in cluster
    versions = mk(broker, "cluster", "api-versions").stdout.splitlines()
    assert "Produce 0-12" in versions and "Fetch 4-17" in versions


def test_offsets_headers_and_json_over_the_wire(broker: InProcessBroker, topic: str) -> None:
    mk(broker, "produce", topic, "-H", "src=cli", stdin="".join(f"m{i}\n" for i in range(5)))
    tail = mk(broker, "consume", topic, "-p", "0", "-o", "-2", "-e", "--json")
    records = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [r["value"] for r in records] == ["m3", "m4"]
    assert records[0]["headers"] == {"src": "cli"}
    exact = mk(broker, "consume", topic, "-o", "1", "-c", "2")
    assert exact.stdout.split() == ["m1", "m2"]
    timed = mk(broker, "consume", topic, "--from-time", "2000-01-01", "-e")
    assert len(timed.stdout.split()) == 5
