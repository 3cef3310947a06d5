"""A full disk under the log: a failed append leaves the log exactly as it was, nothing
acknowledged before or after is lost or duplicated, also after reopening. Real ENOSPC, from a
small tmpfs (diskkit)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from logkit import make_batch, payload_id, read_records

from diskkit import PAGE, SmallDisk, small_disk
from minikafka.errors import KafkaStorageError
from minikafka.log import LogManager, Partition

__all__ = ["small_disk"]


class Appender:
    """Appends numbered records to partition t-0 and remembers which were acknowledged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.log = LogManager(path, exclusive=True)
        if not self.log.exists("t"):
            self.log.create_topic("t")
        self.acked: list[str] = []
        self.next = 0

    @property
    def partition(self) -> Partition:
        return self.log.partition("t", 0)

    def batch(self, count: int, size: int = 100) -> tuple[bytes, list[str]]:
        ids = [f"r:{self.next + i:08d}" for i in range(count)]
        data = make_batch(count, size=size, start=self.next)
        self.next += count
        return data, ids

    def append(self, count: int, size: int = 100) -> None:
        data, ids = self.batch(count, size)
        self.partition.append(data)
        self.acked += ids

    def refused(self, count: int, size: int = 100) -> None:
        """Append a batch that the disk must refuse."""
        data, _ids = self.batch(count, size)
        with pytest.raises(KafkaStorageError):
            self.partition.append(data)

    def check(self) -> None:
        """Exactly the acknowledged records, in order, at contiguous offsets; also after a
        reopen."""
        for reopen in (False, True):
            if reopen:
                self.log.close()
                self.log = LogManager(self.path, exclusive=True)
            records = read_records(self.partition)
            assert [payload_id(r.value) for r in records] == self.acked
            assert [r.offset for r in records] == list(range(len(self.acked)))
            assert self.partition.log_end_offset == len(self.acked)


@pytest.fixture
def appender(small_disk: SmallDisk) -> Iterator[Appender]:
    made = Appender(small_disk.path)
    yield made
    made.log.close()


def test_short_write_is_cut_back(small_disk: SmallDisk, appender: Appender) -> None:
    """A batch of which only the first page fits is a short write: it is cut back, and the
    batches acknowledged once space is back follow the earlier ones directly. (In append mode
    they landed behind the partial bytes: unreadable, and cut by recovery.)"""
    appender.append(3)
    small_disk.fill(leave=PAGE)
    appender.refused(100)  # ~12 KiB: its first pages fit, the rest not
    small_disk.release()
    appender.append(3)
    appender.append(1, size=5000)
    appender.check()


@pytest.mark.parametrize("failing", [".index", ".timeindex"])
def test_enospc_at_an_index_write(small_disk: SmallDisk, appender: Appender, failing: str
                                  ) -> None:
    """The first batch of a segment fits its page of .log, but the index entry it needs cannot
    get a page: the append fails as a whole and the log end does not move. (The log bytes used
    to stay, so the next batch took the same offsets: after a reopen the acknowledged one was
    cut as not contiguous, or the refused one was read in its place.)"""
    appender.partition  # noqa: B018 (opened before the disk fills: its files exist)
    small_disk.fill(leave=PAGE if failing == ".index" else 2 * PAGE)
    appender.refused(5)
    small_disk.release()
    for _ in range(3):
        appender.append(5)
    appender.check()


def test_roll_on_a_full_disk(small_disk: SmallDisk, appender: Appender) -> None:
    """A roll whose producer snapshot cannot be written fails the append and leaves no new
    segment behind; the next append after space is freed rolls and lands after the earlier
    ones."""
    appender.log.alter_topic_config("t", {"segment.bytes": "2000"})
    appender.append(5)  # ~700 bytes
    appender.append(5)
    small_disk.fill(leave=0)
    appender.refused(10)
    assert [s.base_offset for s in appender.partition.segments] == [0]
    small_disk.release()
    appender.append(10)
    appender.append(10)
    assert len(appender.partition.segments) == 3
    appender.check()


def test_close_on_a_full_disk(small_disk: SmallDisk, appender: Appender) -> None:
    """Closing writes a producer snapshot and a checkpoint, which only save recovery work: on a
    full disk they are skipped and the log still closes, its files released."""
    appender.append(5)
    small_disk.fill(leave=0)
    appender.log.close()
    small_disk.release()
    appender.log = LogManager(appender.path, exclusive=True)
    appender.append(5)
    appender.check()


def test_roll_without_inodes(small_disk: SmallDisk, appender: Appender) -> None:
    """A roll that can create the new .log but not its .index fails the append, and leaves no
    file or open descriptor of the new segment behind. (The .log stayed, its descriptor
    leaked, and the error was a bare OSError.)"""
    appender.log.alter_topic_config("t", {"segment.bytes": "2000"})
    appender.append(10)
    small_disk.use_inodes(leave=1)
    appender.refused(10)
    new_log = appender.path / "t-0" / f"{10:020d}.log"
    assert not new_log.exists()
    assert str(new_log) not in {os.readlink(f"/proc/self/fd/{fd}")
                                for fd in os.listdir("/proc/self/fd")
                                if os.path.exists(f"/proc/self/fd/{fd}")}
    small_disk.release()
    appender.append(10)
    appender.check()


def test_delete_records_on_a_full_disk(small_disk: SmallDisk, appender: Appender) -> None:
    """DeleteRecords inside the first segment cannot save the new log start on a full disk:
    refused, and the log is as it was (the log start used to move in memory only, back after
    a restart). One that deletes whole segments frees their space first, then saves: it works
    on the full disk, and lasts."""
    appender.log.alter_topic_config("t", {"segment.bytes": "2000"})
    for _ in range(4):
        appender.append(10)  # a segment each
    small_disk.fill(leave=0)
    with pytest.raises(KafkaStorageError):
        appender.partition.delete_records(5)
    assert appender.partition.log_start_offset == 0
    appender.check()
    assert appender.partition.delete_records(25) == 25
    appender.acked = appender.acked[25:]
    appender.log.close()
    appender.log = LogManager(appender.path, exclusive=True)
    assert appender.partition.log_start_offset == 25
    assert [payload_id(r.value) for r in read_records(appender.partition)] == appender.acked


def txn_batch(pid: int, size: int = 100) -> bytes:
    return make_batch(1, size=size, tag=f"p{pid}", producer_id=pid, producer_epoch=0,
                      base_sequence=0, transactional=True)


@pytest.mark.parametrize("refused", [".txnindex", ".log"])
def test_a_refused_abort_marker_leaves_no_entry_and_the_transaction_open(
        small_disk: SmallDisk, appender: Appender, refused: str) -> None:
    """An ABORT's index entry is written before its marker: if the entry cannot be written (a
    new .txnindex needs a page), nothing is; if the marker cannot be, the entry is cut back.
    Either way the transaction is still open (the LSO holds), and the abort the coordinator
    retries lands once."""
    part = appender.partition
    earlier = []
    if refused == ".log":
        part.append(txn_batch(1))
        part.write_marker(1, 0, False, 0)                   # the index file has its page
        earlier = [(1, 0)]
    end = part.segments[-1].size
    start = part.append(txn_batch(2, size=100 + (PAGE - 20 - end - len(txn_batch(2))) % PAGE)
                        ).base_offset
    assert part.segments[-1].size % PAGE == PAGE - 20       # no room for a marker in its page
    small_disk.fill(leave=0)
    with pytest.raises(KafkaStorageError):
        part.write_marker(2, 0, False, 0)
    assert (part.log_end_offset, part.last_stable_offset) == (start + 1, start)
    index = appender.path / "t-0" / f"{0:020d}.txnindex"
    assert index.stat().st_size == 34 * len(earlier)
    small_disk.release()
    assert part.write_marker(2, 0, False, 0) == start + 1
    assert part.last_stable_offset == start + 2
    assert part.aborted_transactions(0, start + 2) == [*earlier, (2, start)]
    assert index.stat().st_size == 34 * (len(earlier) + 1)


def test_held_batches_the_disk_refuses(small_disk: SmallDisk, appender: Appender) -> None:
    """Held batches (the broker's group commit) whose one write the disk refuses: each caller
    hears it, the log is as it was before them (their offsets are given again), and nothing of
    them comes back after a reopen."""
    appender.append(3)
    told: list[KafkaStorageError | None] = []
    for _ in range(4):
        data, _ids = appender.batch(1, size=2000)
        appender.partition.append(data, told.append)
    assert appender.partition.log_end_offset == 7
    small_disk.fill(leave=0)
    appender.partition.write_held()
    assert len(told) == 1
    assert isinstance(told[0], KafkaStorageError)
    assert appender.partition.log_end_offset == 3
    small_disk.release()
    appender.append(3)
    appender.check()
