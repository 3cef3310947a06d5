"""Embedded log throughput for 100-byte records, beside persist-queue's SQLite-WAL queue.

What is measured, all in this process on a temporary directory:
- encode: `encode_batch` alone (the producer's cost, kept out of the append figures);
- append: pre-encoded batches through `Partition.append` (validate CRC and records, assign
  offsets, write, publish), and with flush `always` a `Partition.flush()` (fdatasync) after
  every append; the title says whether the validator ran compiled (see setup.py);
- read: `Partition.read(offset, 1 MiB).read()` from the first offset to the end, stepping over the
  returned batches by their length fields (what a consumer needs before decoding);
- clients: the embedded `Producer.send_many` (encoding included) and `Consumer.poll` (records
  decoded into messages), i.e. what an application sees end to end;
- SQLite: `persistqueue.SQLiteQueue` (WAL journal) putting and getting the same items, committing
  once per batch; `synchronous=OFF` stands beside flush `never`, `FULL` beside `always`.
MB/s counts the 100-byte values only, so the two columns compare like with like.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import persistqueue
from rich.table import Table

from minikafka import Consumer, Producer
from minikafka.log import LogManager, validator
from minikafka.records import Record, batch_size_at, encode_batch

VALUE = 100
BATCH_SIZES = (1, 100, 1000)
# records per case: enough for ~0.3-1 s each; fsync-per-append cases are bounded by the disk
RECORDS = {("never", 1): 50_000, ("never", 100): 1_000_000, ("never", 1000): 2_000_000,
           ("always", 1): 2_000, ("always", 100): 100_000, ("always", 1000): 500_000}
SQLITE_RECORDS = {("never", 1): 20_000, ("never", 100): 100_000, ("never", 1000): 100_000,
                  ("always", 1): 1_000, ("always", 100): 10_000, ("always", 1000): 20_000}


@dataclass
class Result:
    records: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    @property
    def mb_s(self) -> float:
        return self.rate * VALUE / 1e6


def timed(records: int, work: Callable[[], object]) -> Result:
    started = time.perf_counter()
    work()
    return Result(records, time.perf_counter() - started)


def make_batches(batch_size: int, records: int) -> list[bytes]:
    """Distinct pre-encoded batches would cost more memory than they teach: reuse a few."""
    distinct = [encode_batch([Record(bytes([65 + (i + j) % 26]) * VALUE, None)
                              for j in range(batch_size)]) for i in range(8)]
    return [distinct[i % 8] for i in range(records // batch_size)]


def bench_encode(batch_size: int) -> Result:
    records = [Record(b"x" * VALUE, None) for _ in range(batch_size)]
    count = max(20_000 // batch_size, 20)
    return timed(count * batch_size, lambda: [encode_batch(records) for _ in range(count)])


def bench_log(root: Path, batch_size: int, flush: str, exclusive: bool) -> tuple[Result, Result]:
    records = RECORDS[(flush, batch_size)]
    batches = make_batches(batch_size, records)
    data_dir = root / f"log-{batch_size}-{flush}-{exclusive}"
    with LogManager(data_dir, exclusive=exclusive, flush_policy=flush) as log:
        log.create_topic("bench", 1)
        part = log.partition("bench", 0)
        append = part.append
        if flush == "always":
            def work() -> None:
                for batch in batches:
                    append(batch)
                    part.flush()
        else:
            def work() -> None:
                for batch in batches:
                    append(batch)
        appended = timed(records, work)

        def read_all() -> None:
            offset, end = 0, part.high_watermark
            while offset < end:
                data = part.read(offset, 1 << 20).read()
                pos = last = 0
                while pos < len(data):
                    last, pos = pos, pos + batch_size_at(data, pos)
                offset = int.from_bytes(data[last : last + 8], "big") + batch_size
        read = timed(records, read_all)
    shutil.rmtree(data_dir)
    return appended, read


def bench_sqlite(root: Path, batch_size: int, flush: str) -> tuple[Result, Result]:
    records = SQLITE_RECORDS[(flush, batch_size)]
    synchronous = "FULL" if flush == "always" else "OFF"
    path = root / f"sqlite-{batch_size}-{synchronous}"
    queue = persistqueue.SQLiteQueue(str(path), auto_commit=False)
    queue._putter.execute(f"PRAGMA synchronous={synchronous}")  # the WAL journal is its default
    item = b"x" * VALUE

    def put_all() -> None:
        for i in range(records):
            queue.put(item)
            if (i + 1) % batch_size == 0:
                queue.task_done()  # commit

    def get_all() -> None:
        for i in range(records):
            queue.get(block=False)
            if (i + 1) % batch_size == 0:
                queue.task_done()

    put = timed(records, put_all)
    got = timed(records, get_all)
    queue.close()
    shutil.rmtree(path)
    return put, got


def fmt(value: float) -> str:
    return f"{value:,.0f}"


def ratio(ours: Result, theirs: Result | None) -> str:
    return "" if theirs is None else f"{ours.rate / theirs.rate:,.1f}x"


CLIENT_RECORDS = 500_000


def bench_clients(root: Path) -> tuple[Result, Result]:
    """Producer.send_many then Consumer.poll over the same records, in-process."""
    rows = [(None, b"v" * VALUE, (), None)] * CLIENT_RECORDS
    with Producer(root / "clients", batch_size=1000) as producer:
        producer.send_many("warm", rows[:10_000])  # first-touch costs out of the figure
        produced = timed(CLIENT_RECORDS, lambda: producer.send_many("t", rows))

    def consume_all() -> None:
        with Consumer(root / "clients", auto_offset_reset="earliest") as consumer:
            consumer.subscribe(["t"])
            seen = 0
            while seen < CLIENT_RECORDS:
                seen += len(consumer.poll(timeout=1.0, max_records=100_000))

    return produced, timed(CLIENT_RECORDS, consume_all)


def run() -> list[Table]:
    encode = Table(title="encode_batch (producer side), 100-byte values")
    for column in ("batch", "records/s", "MB/s"):
        encode.add_column(column, justify="right")
    for size in BATCH_SIZES:
        result = bench_encode(size)
        encode.add_row(str(size), fmt(result.rate), f"{result.mb_s:,.1f}")

    root = Path(tempfile.mkdtemp(prefix="minikafka-bench-"))
    try:
        sqlite = {(size, flush): bench_sqlite(root, size, flush)
                  for size in BATCH_SIZES for flush in ("never", "always")}
        cases = [(size, flush, False) for flush in ("never", "always") for size in BATCH_SIZES]
        cases += [(size, "never", True) for size in BATCH_SIZES]
        logs = {case: bench_log(root, *case) for case in cases}
        produced, consumed = bench_clients(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    compiled = not validator.__file__.endswith(".py")
    walk = "the compiled validator (mypyc)" if compiled else "the interpreted validator"
    tables = []
    for title, which in (("append", 0), ("read", 1)):
        table = Table(title=f"log {title}: Partition.{title} of 100-byte records "
                            "(pre-encoded batches) vs persist-queue SQLiteQueue (WAL) "
                            f"{'put' if which == 0 else 'get'}"
                            + (f"; records validated by {walk}" if which == 0 else ""))
        for column in ("batch", "flush", "mode", "records/s", "MB/s", "SQLite rec/s",
                       "vs SQLite"):
            table.add_column(column, justify="right")
        for (size, flush, exclusive), results in logs.items():
            ours = results[which]
            theirs = sqlite[(size, flush)][which]
            table.add_row(str(size), flush, "broker" if exclusive else "embedded",
                          fmt(ours.rate), f"{ours.mb_s:,.1f}", fmt(theirs.rate),
                          ratio(ours, theirs))
        tables.append(table)
    clients = Table(title="embedded clients end to end, 100-byte records, flush never "
                          "(encode/decode in Python included)")
    for column in ("operation", "records/s", "MB/s", "SQLite rec/s", "vs SQLite"):
        clients.add_column(column, justify="right")
    for name, ours, theirs in (("Producer.send_many", produced, sqlite[(1000, "never")][0]),
                               ("Consumer.poll", consumed, sqlite[(1000, "never")][1])):
        clients.add_row(name, fmt(ours.rate), f"{ours.mb_s:,.1f}", fmt(theirs.rate),
                        ratio(ours, theirs))
    return [encode, *tables, clients]
