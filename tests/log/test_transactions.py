"""Transactions in the log: transactional batches, COMMIT/ABORT markers, the last stable offset,
the aborted-transaction index (`.txnindex`) and the producer state that survives a restart or a
crash mid-transaction (Kafka's ProducerStateManager, TransactionIndex, UnifiedLog)."""

from __future__ import annotations

import os
import shutil
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from logkit import FakeClock, make_batch, payload_id, read_records, rewrite_boot_id

from minikafka.errors import InvalidRecordError, InvalidTxnStateError
from minikafka.log import InvalidProducerEpochError, LogManager, Partition
from minikafka.records import decode_batch, decode_batches, encode_batch, iter_batches

OpenLog = Callable[..., LogManager]
TXN_ENTRY = struct.Struct(">hqqqq")  # Kafka's AbortedTxn: version, pid, first, last, LSO


def txn_batch(pid: int, count: int = 2, *, seq: int = 0, epoch: int = 0, tag: str = "t",
              clock: FakeClock | None = None) -> bytes:
    """A transactional batch of producer `pid` (values `tag:<seq>`)."""
    return make_batch(count, tag=tag, start=seq, producer_id=pid, producer_epoch=epoch,
                      base_sequence=seq, transactional=True,
                      timestamp=clock.ms if clock else None)


def ids(records: list) -> list[str]:  # type: ignore[type-arg]
    return [payload_id(r.value) for r in records]


def committed(part: Partition) -> list[str]:
    """What a read_committed consumer sees: reads up to the LSO, records of the aborted
    transactions dropped as Kafka's consumers drop them, control batches skipped."""
    upper = part.last_stable_offset
    offset, out = part.log_start_offset, []
    aborted = sorted(part.aborted_transactions(offset, upper), key=lambda a: a[1])
    dropping: set[int] = set()
    while (found := part.read(offset, 1 << 20, upper)) is not None:
        assert found.next_offset <= upper
        for batch in decode_batches(found.read()):
            h = batch.header
            while aborted and aborted[0][1] <= h.base_offset:
                dropping.add(aborted.pop(0)[0])
            if h.is_control:
                dropping.discard(h.producer_id)
            elif not (h.is_transactional and h.producer_id in dropping):
                out += ids(batch.records)
        offset = found.next_offset
    return out


@pytest.fixture(params=["exclusive", "shared"])
def open_part(request: pytest.FixtureRequest, open_log: OpenLog, clock: FakeClock
              ) -> Callable[..., Partition]:
    """Open partition t-0 of a data directory as a broker (exclusive) or embedded (shared);
    `open_part(close=True)` closes the one opened last."""
    opened: list[LogManager] = []

    def open_(path: Path | None = None, close: bool = False, **config: object) -> Partition:
        if close:
            opened.pop().close()
        log = open_log(path, clock=clock, exclusive=request.param == "exclusive")
        opened.append(log)
        if "t" not in log.topics():
            log.create_topic("t", 1, config)
        return log.partition("t", 0)
    return open_


# --- markers, LSO, read_committed reads -------------------------------------------------------


def test_markers_move_the_lso_and_aborts_are_listed(open_part: Callable[..., Partition]) -> None:
    part = open_part()
    part.append(txn_batch(1, 3, tag="a"))                   # 0-2   txn of 1
    part.append(make_batch(2, tag="p"))                     # 3-4   plain
    part.append(txn_batch(2, 2, tag="b"))                   # 5-6   txn of 2
    assert part.last_stable_offset == 0
    assert part.read(0, 1 << 20, upper=0) is None
    assert part.write_marker(1, 0, True, 5) == 7            # 1 commits
    assert part.last_stable_offset == 5 and part.high_watermark == 8
    assert committed(part) == ["a:00000000", "a:00000001", "a:00000002", "p:00000000",
                               "p:00000001"]
    part.append(txn_batch(1, 2, seq=3, tag="c"))           # 8-9   a second txn of 1
    assert part.write_marker(2, 0, False, 5) == 10          # 2 aborts: 1's txn holds the LSO
    assert part.last_stable_offset == 8
    assert part.aborted_transactions(0, 8) == [(2, 5)]
    assert part.aborted_transactions(7, 8) == [(2, 5)]      # overlaps: its marker is at 10
    assert part.write_marker(1, 0, False, 5) == 11          # 1 aborts too
    assert part.last_stable_offset == part.high_watermark == 12
    assert part.aborted_transactions(0, 12) == [(2, 5), (1, 8)]
    assert part.aborted_transactions(11, 12) == [(1, 8)]      # its marker is in the range
    assert part.aborted_transactions(12, 12) == []
    assert committed(part) == ["a:00000000", "a:00000001", "a:00000002", "p:00000000",
                               "p:00000001"]
    assert [r.offset for r in read_records(part)] == list(range(12))  # read_uncommitted: all


def test_the_marker_is_kafkas_end_transaction_marker(open_part: Callable[..., Partition],
                                                     clock: FakeClock) -> None:
    part = open_part()
    part.append(txn_batch(9, epoch=3))
    offset = part.write_marker(9, 3, False, 17)
    batch = decode_batch(part.read_batches(offset, 1 << 20))  # checks the CRC-32C
    h = batch.header
    assert (h.base_offset, h.attributes, h.producer_id, h.producer_epoch, h.base_sequence,
            h.record_count, h.last_offset_delta) == (2, 0x30, 9, 3, -1, 1, 0)
    assert h.max_timestamp == h.base_timestamp == clock.ms
    [record] = batch.records
    assert record.key == struct.pack(">hh", 0, 0)  # version 0, ABORT
    assert record.value == struct.pack(">hi", 0, 17)  # version 0, coordinator epoch
    commit = decode_batch(part.read_batches(part.write_marker(9, 3, True, 17), 1 << 20))
    assert commit.records[0].key == struct.pack(">hh", 0, 1)


def test_read_upper_returns_whole_batches_below_it(open_part: Callable[..., Partition]) -> None:
    part = open_part(**{"segment.bytes": 1000})
    for i in range(6):
        part.append(make_batch(3, start=3 * i))             # 0-17, several segments
    part.append(txn_batch(1, 2))                            # 18-19 open
    part.append(make_batch(3, start=18))                    # 20-22
    upper = part.last_stable_offset
    assert upper == 18 and len(part.segments) > 2
    offset, seen = 0, []
    while (found := part.read(offset, 1 << 20, upper)) is not None:
        batches = list(decode_batches(found.read()))
        assert sum(b.header.size for b in batches) == found.length
        seen += [r.offset for b in batches for r in b.records]
        offset = found.next_offset
    assert seen == list(range(18))
    assert part.read(19, 1 << 20, upper) is None            # inside the open transaction
    assert part.read(21, 1 << 20, upper) is None
    found = part.read(17, 1 << 20, upper)                   # the batch holding 17, not beyond
    assert found is not None and found.next_offset == 18


def test_marker_epochs_fence_and_bump(open_part: Callable[..., Partition]) -> None:
    part = open_part()
    part.append(txn_batch(4, epoch=2))
    with pytest.raises(InvalidProducerEpochError):
        part.write_marker(4, 1, False, 0)
    assert part.last_stable_offset == 0                     # still open
    part.write_marker(4, 3, False, 0)                       # a newer epoch aborts it (fencing)
    assert part.last_stable_offset == part.high_watermark == 3
    assert part.aborted_transactions(0, 3) == [(4, 0)]
    with pytest.raises(InvalidProducerEpochError):
        part.append(txn_batch(4, seq=2, epoch=2))           # the zombie's epoch is fenced
    [state] = part.producer_states()
    assert (state.producer_id, state.producer_epoch, state.coordinator_epoch,
            state.current_txn_start_offset) == (4, 3, 0, -1)


def test_marker_without_an_ongoing_transaction_is_still_written(
        open_part: Callable[..., Partition]) -> None:
    part = open_part()
    assert part.write_marker(5, 0, False, 1) == 0
    assert part.write_marker(5, 0, True, 1) == 1
    assert part.high_watermark == part.last_stable_offset == 2
    assert part.aborted_transactions(0, 2) == []
    assert not list(part.dir.glob("*.txnindex"))            # no abort, no file


def test_transactional_batches_are_validated(open_part: Callable[..., Partition]) -> None:
    part = open_part()
    with pytest.raises(InvalidRecordError, match="control"):
        part.append(make_batch(1, producer_id=3, producer_epoch=0, base_sequence=0,
                               transactional=True, control=True))
    with pytest.raises(InvalidRecordError, match="producer id"):
        part.append(encode_batch([(None, b"x", (), None)], transactional=True))
    part.append(txn_batch(3))
    with pytest.raises(InvalidTxnStateError):               # a plain batch mid-transaction
        part.append(make_batch(1, producer_id=3, producer_epoch=0, base_sequence=2))
    part.append(txn_batch(3, seq=2))
    assert part.producer_states()[0].current_txn_start_offset == 0
    assert part.append(txn_batch(3, seq=2)).duplicate       # a retry inside it


# --- the aborted-transaction index on disk ----------------------------------------------------


def txnindex_entries(pdir: Path) -> list[tuple[int, ...]]:
    out = []
    for path in sorted(pdir.glob("*.txnindex")):
        data = path.read_bytes()
        assert len(data) % 34 == 0
        out += [entry for entry in TXN_ENTRY.iter_unpack(data)]
    return out


def abort_two(part: Partition) -> None:
    """Offsets 0-1 txn of 1 (aborted at 4), 2-3 txn of 2 (open: the LSO stays at 2)."""
    part.append(txn_batch(1))
    part.append(txn_batch(2))
    part.write_marker(1, 0, False, 0)


def test_the_txnindex_is_kafkas_layout_and_survives_reopening(
        open_part: Callable[..., Partition], data_dir: Path) -> None:
    part = open_part()
    abort_two(part)
    assert txnindex_entries(part.dir) == [(0, 1, 0, 4, 2)]
    pdir = part.dir
    again = open_part(close=True)
    assert again.last_stable_offset == 2                    # 2's transaction is still open
    assert again.aborted_transactions(0, 5) == [(1, 0)]
    again.write_marker(2, 0, False, 0)
    assert again.aborted_transactions(0, 6) == [(1, 0), (2, 2)]
    assert txnindex_entries(pdir) == [(0, 1, 0, 4, 2), (0, 2, 2, 5, 6)]


def test_a_crash_mid_transaction_leaves_it_ongoing(
        open_part: Callable[..., Partition], data_dir: Path, tmp_path: Path) -> None:
    part = open_part(**{"segment.bytes": 600})
    part.append(make_batch(3))                              # several segments, snapshot at rolls
    abort_two(part)
    part.append(make_batch(3, start=3))
    crashed = shutil.copytree(data_dir, tmp_path / "crashed")  # never closed: page cache image
    again = open_part(crashed)
    assert again.last_stable_offset == 5                    # 2's transaction, from offset 5
    assert again.aborted_transactions(0, 5) == [(1, 3)]
    assert [s.current_txn_start_offset for s in again.producer_states()
            if s.producer_id == 2] == [5]


def test_recovery_of_a_torn_tail_keeps_aborts_whose_markers_survived(
        open_part: Callable[..., Partition], data_dir: Path) -> None:
    """An OS crash: the tail past the recovery point is validated again and its index entries
    rebuilt from the markers; the entry whose marker was torn off goes with it."""
    part = open_part()
    part.append(txn_batch(1))                               # 0-1
    part.append(txn_batch(2))                               # 2-3
    part.flush()
    part.write_marker(1, 0, False, 0)                       # 4  survives
    part.append(txn_batch(3))                               # 5-6
    part.write_marker(3, 0, False, 0)                       # 7  torn
    pdir = part.dir
    part.close()  # as an OS crash leaves it, but for the tail cut below
    entries = txnindex_entries(pdir)
    assert [e[1] for e in entries] == [1, 3]
    [tail] = sorted(pdir.glob("*.log"))
    os.truncate(tail, list(iter_batches(tail.read_bytes()))[-1][0] + 30)  # the last marker torn
    [index] = pdir.glob("*.txnindex")
    index.write_bytes(b"")                                  # its entries never reached the disk
    rewrite_boot_id(pdir)
    again = open_part(close=True)
    assert again.log_end_offset == 7
    assert again.aborted_transactions(0, again.last_stable_offset) == [(1, 0)]
    assert again.last_stable_offset == 2                    # 2 still open; 3 open again
    assert {s.producer_id: s.current_txn_start_offset for s in again.producer_states()} == {
        1: -1, 2: 2, 3: 5}
    assert txnindex_entries(pdir) == [(0, 1, 0, 4, 2)]


# --- expiration and retention -----------------------------------------------------------------


def test_expiration_keeps_producers_with_an_ongoing_transaction(
        open_log: OpenLog, clock: FakeClock) -> None:
    log = open_log(clock=clock, producer_id_expiration_ms=60_000)
    log.create_topic("t", 1)
    part = log.partition("t", 0)
    part.append(txn_batch(1, clock=clock))
    part.append(txn_batch(2, clock=clock))
    part.write_marker(2, 0, True, 0)
    clock.advance(3600)
    part.apply_retention()
    assert [s.producer_id for s in part.producer_states()] == [1]
    assert part.last_stable_offset == 0
    log.close()
    again = open_log(clock=clock, producer_id_expiration_ms=60_000).partition("t", 0)
    assert again.last_stable_offset == 0
    again.write_marker(1, 0, False, 0)
    assert again.aborted_transactions(0, again.last_stable_offset) == [(1, 0)]


def test_retention_removes_the_txnindex_with_its_segment(log: LogManager, clock: FakeClock
                                                         ) -> None:
    log.create_topic("t", 1, {"segment.bytes": 600, "retention.bytes": 1})
    part = log.partition("t", 0)
    part.append(txn_batch(1, 3))
    part.write_marker(1, 0, False, 0)
    [index] = part.dir.glob("*.txnindex")
    for i in range(6):
        part.append(make_batch(3, start=3 * i))
    part.apply_retention()
    assert part.log_start_offset > 4
    assert not index.exists()
    assert part.aborted_transactions(part.log_start_offset, part.high_watermark) == []


def test_an_os_crash_after_a_roll_rebuilds_aborts_the_snapshot_is_past(
        open_part: Callable[..., Partition], data_dir: Path, tmp_path: Path) -> None:
    """Nothing flushed, then an OS crash: every segment is validated again, and the producer
    snapshot of the last roll (past the abort) cannot rebuild its entry: the whole log is
    replayed instead."""
    part = open_part(**{"segment.bytes": 600})
    part.append(txn_batch(1))                               # 0-1
    part.write_marker(1, 0, False, 0)                       # 2
    part.append(txn_batch(2))                               # 3-4
    for i in range(4):
        part.append(make_batch(3, start=3 * i))             # rolls: snapshots past the abort
    assert len(part.segments) > 2
    crashed = Path(shutil.copytree(data_dir, tmp_path / "crashed"))
    for index in crashed.glob("t-0/*.txnindex"):
        index.unlink()                                      # never flushed: lost
    rewrite_boot_id(crashed / "t-0")
    again = open_part(crashed)
    assert again.aborted_transactions(0, again.last_stable_offset) == [(1, 0)]
    assert again.last_stable_offset == 3
    assert txnindex_entries(crashed / "t-0") == [(0, 1, 0, 2, 3)]


# --- embedded mode: several processes share the partition -------------------------------------


def test_other_processes_see_markers_lso_and_aborts(
        open_log: OpenLog, spawn: Callable[..., Any], data_dir: Path) -> None:
    """The catch-up paths: processes that opened the partition before another one wrote two
    transactions and an abort see them, as readers and as the next writer."""
    first = open_log()
    first.create_topic("t", 1)
    writer, reader = first.partition("t", 0), open_log().partition("t", 0)
    assert reader.last_stable_offset == 0
    worker = spawn("transact", data_dir, "t")
    assert worker.finish() == 0, worker.stderr()
    assert reader.last_stable_offset == 2                   # 2's transaction is open
    assert reader.aborted_transactions(0, 5) == [(1, 0)]
    assert writer.write_marker(2, 0, False, 0) == 5         # first thing after catching up
    assert writer.last_stable_offset == reader.last_stable_offset == 6
    assert reader.aborted_transactions(0, 6) == [(1, 0), (2, 2)]
    assert txnindex_entries(writer.dir) == [(0, 1, 0, 4, 2), (0, 2, 2, 5, 6)]
    assert {s.producer_id: s.current_txn_start_offset for s in reader.producer_states()} == {
        1: -1, 2: -1}


def test_a_writer_catching_up_keeps_the_aborts_others_wrote(
        log: LogManager, spawn: Callable[..., Any]) -> None:
    """A process whose producer state caught up (an LSO read) but not its index, then writes
    after another process's abort: the entries on disk stay, each once, in order."""
    log.create_topic("t", 1)
    part = log.partition("t", 0)
    assert spawn("transact", log.data_dir, "t", 1).finish() == 0    # 0-3, abort of 1 at 4
    assert part.last_stable_offset == 2
    assert spawn("transact", log.data_dir, "t", 3).finish() == 0    # 5-8, abort of 3 at 9
    assert part.write_marker(2, 0, False, 0) == 10
    assert txnindex_entries(part.dir) == [(0, 1, 0, 4, 2), (0, 3, 5, 9, 2), (0, 2, 2, 10, 7)]
    assert part.aborted_transactions(0, 11) == [(1, 0), (3, 5), (2, 2)]


def test_damage_set_aside_takes_the_entries_of_the_markers_cut_out(
        open_part: Callable[..., Partition]) -> None:
    """The index keeps to the log: a marker cut out of an older segment with the damage around
    it takes its entry along; the other abort's stays."""
    part = open_part(**{"segment.bytes": 600})
    part.append(txn_batch(1, 1))                            # 0
    part.write_marker(1, 0, False, 0)                       # 1
    part.append(txn_batch(2, 1))                            # 2
    part.write_marker(2, 0, False, 0)                       # 3  damaged below
    for i in range(3):
        part.append(make_batch(3, start=3 * i))             # later segments
    assert part.aborted_transactions(0, 4) == [(1, 0), (2, 2)]
    first_log = part.segments[0].log_path
    again = open_part(close=True)
    assert len(again.segments) > 1
    pos = list(iter_batches(first_log.read_bytes()))[3][0]
    with open(first_log, "r+b") as f:
        os.pwrite(f.fileno(), struct.pack(">i", 20), pos + 8)  # a length shorter than a header
    again = open_part(close=True)
    assert again.damaged_bytes > 0
    assert txnindex_entries(again.dir) == [(0, 1, 0, 1, 2)]
    assert again.aborted_transactions(0, again.last_stable_offset) == [(1, 0)]


def test_a_sigkill_mid_transaction_leaves_it_open_for_the_coordinator(
        open_log: OpenLog, spawn: Callable[..., Any], data_dir: Path) -> None:
    """A process SIGKILLed with one transaction aborted and one open: reopened as a broker, the
    open one still holds the LSO until the coordinator's marker ends it."""
    first = open_log()
    first.create_topic("t", 1)
    first.close()
    worker = spawn("transact", data_dir, "t", 1, "hold")
    deadline = time.monotonic() + 10
    while "done" not in worker.lines and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.kill()
    part = open_log(exclusive=True).partition("t", 0)
    assert (part.last_stable_offset, part.high_watermark) == (2, 5)
    assert part.aborted_transactions(0, 2) == [(1, 0)]
    assert part.write_marker(2, 0, True, 0) == 5
    assert part.last_stable_offset == part.high_watermark == 6


def test_the_lso_never_falls_below_the_log_start(open_part: Callable[..., Partition]) -> None:
    """An open transaction whose first batch was deleted (DeleteRecords, retention) holds the
    LSO at the log start, as Kafka's does: not below it, where a read_committed consumer could
    neither start nor move."""
    part = open_part(**{"segment.bytes": 600})
    part.append(txn_batch(1))                               # 0-1, stays open
    for i in range(4):
        part.append(make_batch(3, start=3 * i))             # 2-13, later segments
    start = part.delete_records(8)
    assert part.log_start_offset == start == 8
    assert part.last_stable_offset == 8
    found = part.read(8, 1 << 20, part.last_stable_offset)
    assert found is None                                    # nothing stable past the start yet
    part.write_marker(1, 0, False, 0)
    assert part.last_stable_offset == part.high_watermark == 15
