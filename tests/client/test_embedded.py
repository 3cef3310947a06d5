"""The embedded producer and consumer against real data directories and real processes."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from minikafka import Consumer, Producer
from minikafka.errors import DataDirLockedError
from minikafka.log import LogManager
from minikafka.partitioner import crc32_partition, murmur2_partition

AN_HOUR_AGO = int(time.time() * 1000) - 3_600_000  # old enough to tell apart, young enough to keep


def drain(consumer: Consumer, idle: float = 0.3) -> list:
    """Everything the consumer returns until it has been idle for `idle` seconds."""
    out = []
    while True:
        batch = consumer.poll(timeout=idle, max_records=10_000)
        if not batch:
            return out
        out.extend(batch)


@pytest.mark.parametrize("compression", [None, "gzip", "snappy", "lz4", "zstd"])
def test_round_trip_keeps_keys_values_headers_timestamps(tmp_path: Path, compression) -> None:
    with Producer(tmp_path, compression=compression) as producer:
        sent = producer.send("t", b"v1", key=b"k1", headers=[("h", b"x"), ("n", None)],
                             timestamp=AN_HOUR_AGO)
        producer.send("t", None, key="k2")
        producer.send("t", "text value")
    assert sent == (0, 0)
    with Consumer(tmp_path, "t", auto_offset_reset="earliest") as consumer:
        messages = drain(consumer)
    assert [(m.offset, m.key, m.value) for m in messages] == [
        (0, b"k1", b"v1"), (1, b"k2", None), (2, None, b"text value")]
    assert messages[0].headers == [("h", b"x"), ("n", None)]
    assert messages[0].timestamp == AN_HOUR_AGO
    assert messages[2].timestamp > AN_HOUR_AGO


@pytest.mark.parametrize("name, choose", [("murmur2", murmur2_partition),
                                          ("crc32", crc32_partition)])
def test_keyed_records_go_where_the_partitioner_says(tmp_path: Path, name, choose) -> None:
    keys = [f"order-{i}".encode() for i in range(60)]
    with Producer(tmp_path, partitioner=name, default_partitions=6) as producer:
        sent = producer.send_many("t", [(k, b"v", (), None) for k in keys])
    assert [s.partition for s in sent] == [choose(k, 6) for k in keys]
    assert len({s.partition for s in sent}) > 1


def test_keyless_records_are_spread_a_batch_at_a_time(tmp_path: Path) -> None:
    with Producer(tmp_path, default_partitions=3, batch_size=3) as producer:
        sent = producer.send_many("t", [(None, b"v", (), None)] * 9)
        singles = [producer.send("t", b"v").partition for _ in range(3)]
    assert [s.partition for s in sent] == [0, 0, 0, 1, 1, 1, 2, 2, 2]  # sticky per batch
    assert sorted(singles) == [0, 1, 2]


def test_send_many_offsets_are_contiguous_per_partition(tmp_path: Path) -> None:
    with Producer(tmp_path, batch_size=7) as producer:
        sent = producer.send_many("t", [(None, str(i), (), None) for i in range(50)])
    assert [s.offset for s in sent] == list(range(50))
    with Consumer(tmp_path, "t", auto_offset_reset="earliest") as consumer:
        assert [m.value for m in drain(consumer)] == [str(i).encode() for i in range(50)]


def test_group_resumes_from_committed_offset(tmp_path: Path) -> None:
    with Producer(tmp_path, default_partitions=2) as producer:
        producer.send_many("t", [(str(i), str(i), (), None) for i in range(100)])
    with Consumer(tmp_path, "t", group_id="g", auto_offset_reset="earliest",
                  enable_auto_commit=False) as consumer:
        first = consumer.poll(timeout=1, max_records=30)
        consumer.commit()
        consumer.poll(timeout=1, max_records=10)  # read, never committed
    with Consumer(tmp_path, "t", group_id="g", auto_offset_reset="earliest") as consumer:
        rest = drain(consumer)
    values = sorted(int(m.value) for m in first + rest)
    assert values == list(range(100))  # nothing skipped, nothing committed read twice
    with Consumer(tmp_path, "t", group_id="g") as consumer:
        assert drain(consumer, idle=0.2) == []  # close() auto-committed everything


def test_seek_beginning_end_and_timestamp(tmp_path: Path) -> None:
    with Producer(tmp_path) as producer:
        for i in range(10):
            producer.send("t", str(i), timestamp=1_000_000 + i * 1000)
    with Consumer(tmp_path, "t") as consumer:
        assert drain(consumer, idle=0.1) == []  # default: latest
        consumer.seek_to_beginning()
        assert len(drain(consumer, idle=0.1)) == 10
        consumer.seek_to_timestamp(1_000_000 + 6500)
        assert [m.offset for m in drain(consumer, idle=0.1)] == [7, 8, 9]
        consumer.seek("t", 0, 4)
        assert drain(consumer, idle=0.1)[0].offset == 4
        consumer.seek_to_end()
        assert drain(consumer, idle=0.1) == []


def test_commit_without_group_is_refused(tmp_path: Path) -> None:
    with Consumer(tmp_path, "t") as consumer, pytest.raises(ValueError, match="group_id"):
        consumer.commit()


def test_embedded_client_names_the_broker_that_holds_the_directory(tmp_path: Path) -> None:
    broker = LogManager(tmp_path, exclusive=True)
    broker.lock.write_owner_info({"host": "127.0.0.1", "port": 19092})
    try:
        with pytest.raises(DataDirLockedError, match=r"127\.0\.0\.1:19092"):
            Producer(tmp_path)
    finally:
        broker.close()
    Producer(tmp_path).close()  # free again once the broker is gone


# --- several processes ----------------------------------------------------------------------------

PRODUCER = textwrap.dedent("""
    import sys
    from minikafka import Producer
    data_dir, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with Producer(data_dir, default_partitions=4, batch_size=10) as p:
        for start in range(0, count, 10):
            p.send_many("t", [(f"{name}-{i}", f"{name}-{i}", (), None)
                              for i in range(start, min(start + 10, count))])
""")

CONSUMER = textwrap.dedent("""
    import sys, time
    from minikafka import Consumer
    data_dir, idle_exit = sys.argv[1], float(sys.argv[2])
    ready_at = int(sys.argv[3]) if len(sys.argv) > 3 else 0  # partitions to hold first
    with Consumer(data_dir, "t", group_id="g", auto_offset_reset="earliest",
                  enable_auto_commit=False) as c:
        if ready_at:
            deadline = time.monotonic() + 30
            while len(c.assignment()) != ready_at and time.monotonic() < deadline:
                c.poll(timeout=0.1)  # nothing is produced yet: this only joins the group
            print("ready", flush=True)
        last = time.monotonic()
        while time.monotonic() - last < idle_exit:
            batch = c.poll(timeout=0.1)
            for m in batch:
                print(m.value.decode(), m.partition, m.offset, flush=True)
            if batch:
                c.commit()
                last = time.monotonic()
        print("assigned", c.assignment(), flush=True)
""")


def spawn(script: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)],
                            stdout=subprocess.PIPE, text=True)


def test_two_producers_and_two_group_consumers_share_one_directory(tmp_path: Path) -> None:
    LogManager(tmp_path).create_topic("t", 4)
    consumers = [spawn(CONSUMER, tmp_path, 3.0, 2) for _ in range(2)]
    for c in consumers:  # both have joined and hold two partitions each before any record
        assert c.stdout is not None and c.stdout.readline().strip() == "ready"
    producers = [spawn(PRODUCER, tmp_path, name, 2000) for name in ("a", "b")]
    for p in producers:
        assert p.wait(timeout=60) == 0
    outputs = [c.communicate(timeout=60)[0].splitlines() for c in consumers]
    records = [line.split() for out in outputs for line in out if not line.startswith("assigned")]
    values = [r[0] for r in records]
    assert sorted(values) == sorted(f"{n}-{i}" for n in "ab" for i in range(2000))
    # within one group each partition was read by one consumer: no record twice
    assert len(values) == len(set(values))
    per_consumer = [{int(line.split()[1]) for line in out if not line.startswith("assigned")}
                    for out in outputs]
    assert all(per_consumer)  # the group shared the partitions out
    assert not per_consumer[0] & per_consumer[1]
    # offsets contiguous per partition, as the log assigned them
    for p in range(4):
        offsets = sorted(int(r[2]) for r in records if int(r[1]) == p)
        assert offsets == list(range(len(offsets)))


def test_second_group_member_waits_then_takes_over_when_the_first_dies(tmp_path: Path) -> None:
    with Producer(tmp_path) as producer:
        producer.send_many("t", [(None, f"m{i}", (), None) for i in range(10)])
    first = spawn(CONSUMER, tmp_path, 60)
    assert [first.stdout.readline().split()[0] for _ in range(10)][-1] == "m9"
    time.sleep(0.3)  # let it commit what it printed
    with Consumer(tmp_path, "t", group_id="g", auto_offset_reset="earliest") as second:
        assert second.poll(timeout=0.5) == []  # the only partition is taken
        assert second.assignment() == []
        first.send_signal(signal.SIGKILL)
        first.wait()
        with Producer(tmp_path) as producer:
            producer.send_many("t", [(None, f"m{i}", (), None) for i in range(10, 15)])
        got = []
        deadline = time.monotonic() + 10
        while len(got) < 5 and time.monotonic() < deadline:
            got += second.poll(timeout=0.5)
        assert second.assignment() == [("t", 0)]
    # the dead member committed through m9; the survivor continues right after it
    assert [m.value for m in got] == [f"m{i}".encode() for i in range(10, 15)]


def test_course_exercise_resumes_after_the_printer_is_killed(tmp_path: Path) -> None:
    def run(role: str, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "minikafka", "example", role,
                                 "--data-dir", str(tmp_path), *extra],
                                stdout=subprocess.PIPE, text=True)

    def orders(output: str) -> list[str]:
        return [line.split()[2] for line in output.splitlines() if " order #" in line]

    generator = run("producer", "--orders", "60", "--rate", "40")
    seen: list[str] = []
    kills = 0
    while generator.poll() is None:
        printer = run("consumer")
        assert "resuming group 'order-printer'" in printer.stdout.readline()
        time.sleep(random.uniform(0.05, 0.4))
        printer.send_signal(signal.SIGKILL)
        seen += orders(printer.communicate()[0])
        kills += 1
    printer = run("consumer")
    deadline = time.monotonic() + 20
    while len(set(seen)) < 60 and time.monotonic() < deadline:
        line = printer.stdout.readline()
        seen += orders(line)
    printer.kill()
    printer.wait()
    assert set(seen) == {f"#{n:04d}" for n in range(1, 61)}  # none skipped
    assert len(seen) - 60 <= kills  # at most the one printed-but-uncommitted order per kill


def test_the_consumer_steps_over_transaction_markers(tmp_path: Path) -> None:
    """Markers are not records: a consumer never returns one, and its position passes a
    marker that ends the log, as a Kafka consumer's does."""
    with Producer(tmp_path) as producer:
        producer.send("t", b"plain", partition=0)
    log = LogManager(tmp_path)
    log.partition("t", 0).write_marker(7, 0, True, 0)
    with Consumer(tmp_path, "t", auto_offset_reset="earliest") as consumer:
        assert [m.value for m in drain(consumer)] == [b"plain"]
        assert consumer.position("t", 0) == 2
    log.close()
