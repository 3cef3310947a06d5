"""The log cleaner: how fast it compacts, and what it costs producers while it runs.

What is measured:
- throughput: one `clean_partition` pass, in this process, over a compacted partition of
  FILL_MB of 100-byte values under KEYS keys (batches of 100 records, 4 MiB segments), all dirty:
  MB/s is log bytes read per second (the pass also writes what it keeps), uncompressed and lz4.
- produce latency: a `minikafka serve` subprocess holds a topic of FILL_MB written under
  cleanup.policy=delete; it is then altered to compact, and at once a confluent-kafka producer
  sends one 100-byte record at a time to another topic (acks=all, each waited for) until the
  cleaner's pass is done (PROBE_SECONDS with the cleaner off): p50/p99 of those sends and their
  rate, with the cleaner off, on (no rate limit), and limited by
  log.cleaner.io.max.bytes.per.second; and the bytes the pass read (map and rewrite) per second
  of it. The cleaner is a thread of the broker's process, which shares the GIL with the loop.
"""

from __future__ import annotations

import os
import re
import statistics
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from rich.table import Table

from minikafka.clock import wall_ms
from minikafka.log import LogManager
from minikafka.log.cleaner import CleanerConfig, clean_partition
from minikafka.records import Record, encode_batch
from minikafka.shop.processes import BrokerProcess

FILL_MB = 32
KEYS = 10_000
VALUE = 100
PROBE_SECONDS = 3.0
PASS_LIMIT = 30.0  # seconds a cleaner pass may take before the latency probe gives up


def _batches(compression: int) -> list[bytes]:
    """Values of random hex digits: they compress about as JSON does (lz4: ~55%)."""
    per_batch = 100
    count = FILL_MB * 1_000_000 // (VALUE + 20) // per_batch
    values = [os.urandom(VALUE // 2).hex().encode() for _ in range(997)]
    return [encode_batch([Record(values[(n * 31 + i) % len(values)],
                                 b"key-%05d" % ((n * per_batch + i) % KEYS))
                          for i in range(per_batch)], compression=compression)
            for n in range(count)]


def cleaner_throughput(root: Path, compression: int) -> tuple[float, float, int]:
    """(MB of closed segments, seconds, records removed) of one pass over an all-dirty
    partition (it reads them twice: once for the key map, once to rewrite them)."""
    with LogManager(root / f"throughput-{compression}", exclusive=True) as logs:
        logs.create_topic("t", 1, {"cleanup.policy": "compact", "segment.bytes": 4 << 20})
        partition = logs.partition("t", 0)
        for batch in _batches(compression):
            partition.append(batch)
        closed = sum(s.size for s in partition.segments[:-1])
        started = time.perf_counter()
        result = clean_partition(partition, CleanerConfig(), wall_ms())
        seconds = time.perf_counter() - started
    assert result is not None
    return closed / 1e6, seconds, result.records_removed


def produce_latency(root: Path, *flags: str) -> tuple[float, float, float, float]:
    """(p50 ms, p99 ms, sends/s, MB/s the cleaner read) from the moment a big topic is made
    compacted until the cleaner's pass over it is done (with the cleaner off: PROBE_SECONDS)."""
    broker = BrokerProcess(root / "data", "--no-ui", "--log-level", "INFO",
                           "--log-cleaner-backoff-ms", "50", *flags).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for name in ("big", "probe"):
            admin.create_topics([NewTopic(name, 1, 1, config={"segment.bytes": str(1 << 20)})]
                                )[name].result(timeout=10)
        filler = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5,
                           "batch.size": 1 << 20})
        for n in range(FILL_MB * 1_000_000 // (VALUE + 20)):
            while True:
                try:
                    filler.produce("big", b"v" * VALUE, key=b"key-%05d" % (n % KEYS))
                    break
                except BufferError:  # the client's queue is full: let it drain
                    filler.poll(0.05)
        filler.flush(60)
        probe = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "acks": "all"})
        probe.produce("probe", b"warm-up")
        probe.flush(10)
        admin.incremental_alter_configs([ConfigResource(
            "topic", "big", incremental_configs=[_set("cleanup.policy", "compact")])])[
            ConfigResource("topic", "big")].result(timeout=10)
        latencies: list[float] = []
        began = time.perf_counter()
        cleaning = "--no-log-cleaner-enable" not in flags
        while time.perf_counter() - began < (PASS_LIMIT if cleaning else PROBE_SECONDS):
            started = time.perf_counter()
            probe.produce("probe", b"p" * VALUE)
            probe.flush(10)
            latencies.append((time.perf_counter() - started) * 1000)
            if cleaning and len(latencies) % 200 == 0 and "cleaned big-0" in broker.log():
                break
        seconds = time.perf_counter() - began
        del probe, filler
    finally:
        broker.stop()
    cleaned = sum(int(m) for m in re.findall(r"cleaned big-0 .*?: (\d+) bytes read", broker.log()))
    quantiles = statistics.quantiles(latencies, n=100)
    return quantiles[49], quantiles[98], len(latencies) / seconds, cleaned / 1e6 / seconds


def _set(name: str, value: str) -> object:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry
    return ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)


def run() -> list[Table]:
    with tempfile.TemporaryDirectory(prefix="bench-cleaner-") as tmp:
        root = Path(tmp)
        throughput = Table(title=f"Cleaner pass: {FILL_MB} MB of {VALUE}-byte values under "
                           f"{KEYS:,} keys, all dirty (one thread)")
        for column in ("codec", "log MB", "seconds", "MB/s", "records removed"):
            throughput.add_column(column, justify="right")
        for name, codec in (("none", 0), ("lz4", 3)):
            mb, seconds, removed = cleaner_throughput(root, codec)
            throughput.add_row(name, f"{mb:.1f}", f"{seconds:.2f}", f"{mb / seconds:.1f}",
                               f"{removed:,}")
        latency = Table(title=f"Produce latency while a {FILL_MB} MB topic is compacted "
                        "(one record at a time, acks=all)")
        for column in ("cleaner", "sends/s", "p50 ms", "p99 ms", "cleaner read MB/s"):
            latency.add_column(column, justify="right")
        for label, flags in (("off", ("--no-log-cleaner-enable",)), ("on, unlimited", ()),
                             ("on, 10 MB/s", ("--log-cleaner-io-max-bytes-per-second",
                                              "10000000"))):
            with tempfile.TemporaryDirectory(dir=root) as run_dir:
                p50, p99, sends, cleaned = produce_latency(Path(run_dir), *flags)
            latency.add_row(label, f"{sends:,.0f}", f"{p50:.2f}", f"{p99:.2f}",
                            f"{cleaned:.1f}")
    return [throughput, latency]
