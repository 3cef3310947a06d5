"""The two kinds of partition: a broker's single-writer `Partition` and embedded mode's
`SharedPartition`, and a data directory passing from one to the other."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from logkit import make_batch, published_state, read_records, rewrite_boot_id

from minikafka.log import LogManager, Partition
from minikafka.log.partition import CHECKPOINT
from minikafka.log.shared import LOCK_FILE, SharedPartition

OpenLog = Callable[..., LogManager]
CONFIG = {"segment.bytes": 2000, "index.interval.bytes": 500}


def fill(part: Partition, batches: int, start: int = 0) -> None:
    for i in range(batches):
        part.append(make_batch(5, start=start + 5 * i))


def test_the_broker_gets_single_writer_partitions(open_log: OpenLog, data_dir: Path) -> None:
    log = open_log(exclusive=True, flush_policy="always")
    log.create_topic("t", 1, CONFIG)
    part = log.partition("t", 0)
    assert type(part) is Partition
    fill(part, 10)  # several rolls
    part.flush()
    part.delete_records(12)
    log.close()
    assert not (data_dir / "t-0" / LOCK_FILE).exists()
    saved = published_state(data_dir / "t-0", CHECKPOINT)
    assert (saved.log_end_offset, saved.log_start_offset) == (50, 12)


def test_embedded_clients_get_shared_partitions(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("t", 1)
    assert isinstance(log.partition("t", 0), SharedPartition)


def test_shared_partition_sees_another_process_append(open_log: OpenLog, data_dir: Path,
                                                      spawn: Callable) -> None:
    log = open_log()
    log.create_topic("t", 1, CONFIG)
    part = log.partition("t", 0)
    assert part.high_watermark == 0
    writer = spawn("produce", data_dir, "t", "w", "shared", 200)
    writer.wait_ready()
    (data_dir / "go").touch()
    assert writer.finish() == 0, writer.stderr()
    assert part.high_watermark == 200
    assert len(read_records(part)) == 200
    assert part.append(make_batch(1)).base_offset == 200


def test_retry_through_a_process_that_had_only_read(open_log: OpenLog) -> None:
    """A process that saw another's idempotent batch as a reader still knows it when it writes."""
    one, two = open_log(), open_log()
    one.create_topic("t", 1)
    reader = two.partition("t", 0)
    batch = make_batch(2, producer_id=3, producer_epoch=0, base_sequence=0)
    one.partition("t", 0).append(batch)
    assert reader.high_watermark == 2
    assert reader.append(batch).duplicate
    assert reader.high_watermark == 2


def test_single_writer_recovers_from_its_checkpoint(open_log: OpenLog, data_dir: Path) -> None:
    """A process crash: what the checkpoint covers is trusted, a torn tail after it is cut."""
    log = open_log(exclusive=True)
    log.create_topic("t", 1, CONFIG)
    fill(log.partition("t", 0), 10)
    log.close()
    tail = sorted((data_dir / "t-0").glob("*.log"))[-1]
    with open(tail, "ab") as f:
        f.write(make_batch(5)[:100])
    part = open_log(exclusive=True).partition("t", 0)
    assert part.recovered_bytes == 100
    assert [r.offset for r in read_records(part)] == list(range(50))


def test_single_writer_checkpoints_while_appending(open_log: OpenLog, data_dir: Path) -> None:
    """Not only at rolls: a crash must not leave a whole large segment to validate."""
    log = open_log(exclusive=True)
    log.create_topic("t", 1, {"max.message.bytes": 2 << 20})
    part = log.partition("t", 0)
    batch = make_batch(1, size=1 << 20)
    for _ in range(70):
        part.append(batch)
    assert len(part.segments) == 1
    assert published_state(data_dir / "t-0", CHECKPOINT).log_end_offset >= 64


def test_single_writer_after_an_os_crash_checks_past_the_recovery_point(
        open_log: OpenLog, data_dir: Path) -> None:
    log = open_log(exclusive=True)
    log.create_topic("t", 1, CONFIG)
    fill(log.partition("t", 0), 10)
    log.close()  # never flushed: the recovery point is the start of the log
    first = sorted((data_dir / "t-0").glob("*.log"))[0]
    with open(first, "r+b") as f:
        f.seek(os.path.getsize(first) - 1)
        f.write(b"\xff")  # its last batch's CRC fails
    rewrite_boot_id(data_dir / "t-0")
    part = open_log(exclusive=True).partition("t", 0)
    assert part.damaged_bytes == part.recovered_bytes > 0  # the batch is cut, the rest kept
    assert part.log_end_offset == 50


def test_delete_records_by_a_broker_holds_for_embedded_clients(open_log: OpenLog) -> None:
    """The broker does not publish in `partition.lock`: what embedded clients published there
    before must not bring deleted records back."""
    log = open_log()
    log.create_topic("t", 1, CONFIG)
    fill(log.partition("t", 0), 10)
    log.close()
    broker = open_log(exclusive=True)
    broker.partition("t", 0).delete_records(12)
    broker.close()
    part = open_log().partition("t", 0)
    assert part.log_start_offset == 12
    assert read_records(part)[0].offset == 12


def test_embedded_appends_hold_for_the_broker(open_log: OpenLog) -> None:
    log = open_log()
    log.create_topic("t", 1, CONFIG)
    fill(log.partition("t", 0), 10)
    log.close()
    broker = open_log(exclusive=True)
    part = broker.partition("t", 0)
    assert part.recovered_bytes == 0
    assert [r.offset for r in read_records(part)] == list(range(50))
