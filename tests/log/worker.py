"""Subprocess roles for the crash and multi-process tests: `python worker.py ROLE ARGS...`.

produce DIR TOPIC TAG SHARED [LIMIT]
    Append batches of 1-20 records `TAG:<seq>` to partition 0 forever (or, once DIR/go exists,
    until LIMIT records);
    after each append returns, print "<base offset> <count> <first seq>" (flushed): that line is the
    acknowledgement the crash test holds the log to.
read DIR TOPIC TOTAL
    Follow partition 0 from offset 0 until TOTAL records were seen, checking that every read is
    whole valid batches with contiguous offsets; print "seen <n>" at the end.
clean DIR TOPIC RATE [KILL_AT]
    Clean partition 0 of compacted TOPIC over and over at RATE bytes/s (until killed); with
    KILL_AT, SIGKILL itself instead of the KILL_AT-th rename (a swap's every step).
transact DIR TOPIC [PID] [hold]
    Append a transactional batch of producer PID (default 1) and one of producer PID + 1 to
    partition 0, abort PID's transaction with a marker (the other stays open), and exit; with
    `hold`, print "done" and wait to be killed instead.
commit DIR GROUP TOPIC COUNT
    Commit offset i (1..COUNT) for (TOPIC, i % 7) of GROUP, one commit at a time, and every tenth
    one also for (TOPIC-mark, i); the store compacts every 50 entries. Starts when DIR/go exists.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from logkit import make_batch

from minikafka.log import LogManager, OffsetAndMetadata, OffsetStore
from minikafka.log.cleaner import CleanerConfig, clean_partition
from minikafka.records import decode_batches


def produce(data_dir: str, topic: str, tag: str, shared: str, limit: str = "0") -> None:
    rng = random.Random(tag)
    manager = LogManager(data_dir, exclusive=shared != "shared")
    partition = manager.partition(topic, 0)
    print("ready", flush=True)
    seq, stop = 0, int(limit)
    while stop and not (Path(data_dir) / "go").exists():  # a bounded run starts with the others
        time.sleep(0.001)
    while not stop or seq < stop:
        count = rng.randint(1, 20) if not stop else min(rng.randint(1, 20), stop - seq)
        info = partition.append(make_batch(count, tag=tag, start=seq))
        print(f"{info.base_offset} {count} {seq}", flush=True)
        seq += count
    manager.close()


def read(data_dir: str, topic: str, total: str) -> None:
    manager = LogManager(data_dir)
    partition = manager.partition(topic, 0)
    print("ready", flush=True)
    offset, deadline = 0, time.monotonic() + 60
    while offset < int(total):
        if time.monotonic() > deadline:
            sys.exit(f"timed out at offset {offset}")
        found = partition.read(offset, random.choice((1, 1000, 100_000)))
        if found is None:
            time.sleep(0.001)
            continue
        data = found.read()
        batches = list(decode_batches(data))  # raises on a bad CRC
        if not batches or sum(b.header.size for b in batches) != len(data):
            sys.exit(f"read({offset}) returned a partial batch")
        for batch in batches:
            for record in batch.records:
                if record.offset != offset:
                    sys.exit(f"expected offset {offset}, got {record.offset}")
                offset += 1
    print(f"seen {offset}", flush=True)
    manager.close()


def transact(data_dir: str, topic: str, first_pid: str = "1", hold: str = "") -> None:
    manager = LogManager(data_dir)
    partition = manager.partition(topic, 0)
    pid = int(first_pid)
    for producer in (pid, pid + 1):
        partition.append(make_batch(2, tag=f"p{producer}", producer_id=producer,
                                    producer_epoch=0, base_sequence=0, transactional=True))
    partition.write_marker(pid, 0, False, 0)
    if hold:
        print("done", flush=True)
        time.sleep(60)
    manager.close()


def commit(data_dir: str, group: str, topic: str, count: str) -> None:
    store = OffsetStore(Path(data_dir) / "offsets.log",
                        compact_min_entries=50)
    print("ready", flush=True)
    while not (Path(data_dir) / "go").exists():  # start together with the other committers
        time.sleep(0.001)
    for i in range(1, int(count) + 1):
        offsets = {(topic, i % 7): OffsetAndMetadata(i, metadata=f"{topic}-{i}")}
        if i % 10 == 0:  # a key never superseded: a lost frame shows as a missing mark
            offsets[(f"{topic}-mark", i)] = OffsetAndMetadata(i)
        store.commit(group, offsets)
    store.close()


def clean(data_dir: str, topic: str, rate: str, kill_at: str = "0") -> None:
    if int(kill_at):
        steps = iter(range(int(kill_at) - 1, -1, -1))
        for name in ("replace", "rename"):
            setattr(os, name, _killing(getattr(os, name), steps))
    manager = LogManager(data_dir, exclusive=True)
    partition = manager.partition(topic, 0)
    settings = CleanerConfig(io_max_bytes_per_second=float(rate))
    print("ready", flush=True)
    while True:
        if clean_partition(partition, settings, int(time.time() * 1000), force=True) is None:
            time.sleep(0.001)


def _killing(op: Callable[..., None], steps: Iterator[int]) -> Callable[..., None]:
    def step(*args: object, **kwargs: object) -> None:
        if next(steps, 1) == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        op(*args, **kwargs)
    return step


if __name__ == "__main__":
    roles = {"produce": produce, "read": read, "transact": transact, "commit": commit,
             "clean": clean}
    roles[sys.argv[1]](*sys.argv[2:])
