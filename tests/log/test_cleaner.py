"""The log cleaner on real files: what a compacted partition keeps, when, and what survives it."""

from __future__ import annotations

import os
import random
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crc32c import crc32c
from logkit import FakeClock

from minikafka.log import LogManager, Partition
from minikafka.log.cleaner import (
    CLEANER_CHECKPOINT,
    CleanerConfig,
    CleanResult,
    LogCleaner,
    OffsetMap,
    clean_partition,
    read_checkpoint,
    retained_batch,
)
from minikafka.records import (
    ATTRIBUTES_AT,
    CONTROL_BIT,
    CRC_AT,
    CRC_START,
    TRANSACTIONAL_BIT,
    BatchHeader,
    Record,
    decode_batches,
    encode_batch,
    read_header,
)

SWAP_LEFTOVERS = (".cleaned", ".swap", ".deleted")
Table = dict[bytes, tuple[int, bytes | None]]  # key -> (offset, value) of its latest record


def compacted(open_log: Callable[..., LogManager], clock: FakeClock, **configs: object
              ) -> tuple[LogManager, Partition]:
    logs = open_log(exclusive=True, clock=clock)
    logs.create_topic("t", 1, {"cleanup.policy": "compact", "segment.bytes": 2048, **configs})
    return logs, logs.partition("t", 0)


def produce(partition: Partition, clock: FakeClock, rows: list[tuple[bytes, bytes | None]],
            per_batch: int = 1, **kwargs: object) -> Table:
    """Append (key, value) rows, `per_batch` records a batch, stamped with the clock's time."""
    written: Table = {}
    for i in range(0, len(rows), per_batch):
        chunk = rows[i:i + per_batch]
        info = partition.append(encode_batch([Record(v, k, timestamp=clock.ms) for k, v in chunk],
                                             **kwargs))
        for n, (key, value) in enumerate(chunk):
            written[key] = (info.base_offset + n, value)
    return written


def rounds(keys: int, count: int, tag: str = "v", size: int = 40
           ) -> list[tuple[bytes, bytes | None]]:
    """`count` rounds of a value for each of `keys` keys."""
    return [(f"k{k}".encode(), f"{tag}{r}-{k}".encode().ljust(size, b"."))
            for r in range(count) for k in range(keys)]


def with_lasting_keys(rows: list[tuple[bytes, bytes | None]], tag: str
                      ) -> list[tuple[bytes, bytes | None]]:
    """`rows` with a key never written again every 9 rows, so that every segment holds a
    record cleaning must keep."""
    out = list(rows)
    for i in range(0, len(rows), 9):
        out.insert(i, (f"once-{tag}-{i}".encode(), b"its only value"))
    return out


def consume(partition: Partition) -> list[Record]:
    """Every record from the log start, read as a consumer reads: from the batch holding the
    offset asked for (or the first after a gap), skipping records before it."""
    offset, out = partition.log_start_offset, []
    while (found := partition.read(offset, 1 << 16)) is not None:
        batches = list(decode_batches(found.read()))
        assert batches
        out += [r for b in batches for r in b.records if r.offset >= offset]
        offset = batches[-1].header.next_offset
    return out


def _headers(partition: Partition) -> list[BatchHeader]:
    return [h for s in partition.segments for _pos, h in s.headers()]


def clean(partition: Partition, clock: FakeClock, *, force: bool = False, **settings: object
          ) -> CleanResult | None:
    """One pass; `force`: whatever the dirty ratio, as an operator's `topics compact` does."""
    return clean_partition(partition, CleanerConfig(**settings),  # type: ignore[arg-type]
                           clock.ms, force=force)


def table_of(records: list[Record]) -> Table:
    return {r.key: (r.offset, r.value) for r in records if r.key is not None}


def test_keeps_the_latest_record_per_key_at_its_offset(open_log: Callable[..., LogManager],
                                                       clock: FakeClock) -> None:
    _logs, p = compacted(open_log, clock)
    latest = produce(p, clock, rounds(10, 20), per_batch=3)
    before = consume(p)
    assert len(p.segments) > 3
    result = clean(p, clock)
    assert result is not None and result.records_removed > 0
    after = consume(p)
    by_offset = {r.offset: r for r in before}
    for record in after:  # nothing changed but what went
        assert by_offset[record.offset].value == record.value
    assert table_of(after) == latest
    active = p.segments[-1].base_offset
    closed = [r for r in after if r.offset < active]
    assert len({r.key for r in closed}) == len(closed), "a key twice in the cleaned part"
    assert read_checkpoint(p.dir) == active
    assert sum(s.size for s in p.segments) < sum(len(r.value or b"") for r in before)


def test_the_active_segment_is_never_cleaned(open_log: Callable[..., LogManager],
                                             clock: FakeClock) -> None:
    _logs, p = compacted(open_log, clock, **{"segment.bytes": 1 << 20})
    produce(p, clock, rounds(3, 10))
    assert clean(p, clock) is None
    assert len(consume(p)) == 30


def test_tombstones_stay_delete_retention_ms_after_their_first_cleaning(
        open_log: Callable[..., LogManager], clock: FakeClock) -> None:
    _logs, p = compacted(open_log, clock, **{"delete.retention.ms": 60_000})
    produce(p, clock, rounds(5, 4))
    produce(p, clock, [(b"k1", None), (b"k3", None)])
    produce(p, clock, [(b"k0", b"w"), (b"k2", b"w")] * 10)
    produce(p, clock, [(b"z", b"roll")] * 40)  # the tombstones' segment is closed
    assert clean(p, clock) is not None
    tombstones = {r.key: r for r in consume(p) if r.value is None}
    assert set(tombstones) == {b"k1", b"k3"}
    assert all(r.timestamp == clock.ms for r in tombstones.values())  # rebased, not changed
    clock.advance(59)
    produce(p, clock, [(b"z", b"more")] * 40)
    clean(p, clock, force=True)
    assert {r.key for r in consume(p) if r.value is None} == {b"k1", b"k3"}
    clock.advance(2)
    produce(p, clock, [(b"z", b"more")] * 40)
    assert clean(p, clock, force=True) is not None
    keys = {r.key for r in consume(p)}
    assert b"k1" not in keys and b"k3" not in keys and b"k0" in keys


def test_min_compaction_lag_keeps_young_records_dirty(open_log: Callable[..., LogManager],
                                                      clock: FakeClock) -> None:
    _logs, p = compacted(open_log, clock, **{"min.compaction.lag.ms": 10_000})
    produce(p, clock, rounds(4, 30))
    assert clean(p, clock) is None  # every closed segment holds records younger than the lag
    clock.advance(5)
    produce(p, clock, rounds(4, 30, tag="w"))
    young_from = min(s.base_offset for s in p.segments if s.max_timestamp == clock.ms)
    clock.advance(6)  # the first records are 11 s old, the others 6 s
    result = clean(p, clock)
    assert result is not None and result.end_offset == young_from
    kept = [r.offset for r in consume(p)]
    assert kept[-(p.log_end_offset - young_from):] == list(range(young_from, p.log_end_offset))
    assert len(kept) < p.log_end_offset


def test_max_compaction_lag_rolls_the_active_segment(open_log: Callable[..., LogManager],
                                                     clock: FakeClock) -> None:
    """KIP-354: a compacted topic's active segment also rolls at max.compaction.lag.ms (by
    record time, as segment.ms does), so that its records become cleanable in time."""
    _logs, p = compacted(open_log, clock, **{"max.compaction.lag.ms": 1000,
                                             "segment.bytes": 1 << 20})
    produce(p, clock, rounds(2, 2))
    clock.advance(0.5)
    produce(p, clock, rounds(2, 1))
    assert len(p.segments) == 1
    clock.advance(0.6)
    produce(p, clock, rounds(2, 1))
    assert [s.base_offset for s in p.segments] == [0, 6]


def test_dirty_ratio_and_max_compaction_lag(open_log: Callable[..., LogManager],
                                            clock: FakeClock) -> None:
    logs, p = compacted(open_log, clock, **{"min.cleanable.dirty.ratio": 0.9})
    produce(p, clock, [(f"u{i}".encode(), b"x" * 40) for i in range(200)])
    assert clean(p, clock) is not None  # all dirty: ratio 1
    produce(p, clock, rounds(2, 40))
    assert clean(p, clock) is None  # a small dirty share
    clock.advance(100)
    logs.alter_topic_config("t", {"max.compaction.lag.ms": 50_000})
    assert clean(p, clock) is not None  # its oldest dirty record is overdue
    active = p.segments[-1].base_offset
    assert [r.key for r in consume(p) if r.offset < active].count(b"k0") == 1


def test_the_dedupe_buffer_bounds_a_pass(open_log: Callable[..., LogManager],
                                         clock: FakeClock) -> None:
    _logs, p = compacted(open_log, clock)
    latest = produce(p, clock, rounds(40, 6), per_batch=4)
    small = 24 * 30  # 27 keys at Kafka's load factor: less than the 40 keys written
    first = clean(p, clock, dedupe_buffer_size=small)
    assert first is not None and first.end_offset < p.segments[-1].base_offset
    assert first.end_offset - first.end_offset % 4 == first.end_offset  # at a batch boundary
    passes = 1
    while read_checkpoint(p.dir) < p.segments[-1].base_offset:
        assert clean(p, clock, dedupe_buffer_size=small, force=True) is not None
        passes += 1
        assert passes < 40
    assert table_of(consume(p)) == latest
    assert clean(p, clock, dedupe_buffer_size=small, force=True) is None


def test_idempotent_producer_state_survives_cleaning_and_reopening(
        open_log: Callable[..., LogManager], clock: FakeClock, data_dir: Path) -> None:
    logs, p = compacted(open_log, clock)
    batches = [encode_batch([Record(b"v%d" % n, b"same", timestamp=clock.ms)], producer_id=7,
                            producer_epoch=0, base_sequence=n) for n in range(60)]
    for batch in batches:
        p.append(batch)
    produce(p, clock, [(b"same", b"other")] * 60)  # overwrites the producer's every record
    assert clean(p, clock) is not None
    assert {r.value for r in consume(p) if r.key == b"same"} == {b"other"}
    kept = [h for h in _headers(p) if h.producer_id == 7]  # its last batch, emptied
    assert [(h.base_offset, h.record_count, h.base_sequence) for h in kept] == [(59, 0, 59)]
    retry = p.append(batches[-1])
    assert retry.duplicate and retry.base_offset == 59
    logs.close()
    logs = open_log(exclusive=True, clock=clock)
    p = logs.partition("t", 0)
    retry = p.append(batches[-1])
    assert retry.duplicate and retry.base_offset == 59
    nxt = p.append(encode_batch([Record(b"v60", b"same", timestamp=clock.ms)], producer_id=7,
                                producer_epoch=0, base_sequence=60))
    assert not nxt.duplicate


def test_reopen_after_cleaning(open_log: Callable[..., LogManager], clock: FakeClock) -> None:
    logs, p = compacted(open_log, clock)
    latest = produce(p, clock, rounds(8, 25), per_batch=5, compression=1)  # gzip
    clean(p, clock)
    records = [(r.offset, r.key, r.value) for r in consume(p)]
    bases = [s.base_offset for s in p.segments]
    logs.close()
    p = open_log(exclusive=True, clock=clock).partition("t", 0)
    assert [(r.offset, r.key, r.value) for r in consume(p)] == records
    assert [s.base_offset for s in p.segments] == bases
    assert table_of(consume(p)) == latest
    assert not [n for n in os.listdir(p.dir) if n.endswith(SWAP_LEFTOVERS)]
    assert (p.dir / CLEANER_CHECKPOINT).exists()


def test_a_read_in_flight_keeps_the_old_bytes(open_log: Callable[..., LogManager],
                                              clock: FakeClock) -> None:
    _logs, p = compacted(open_log, clock)
    produce(p, clock, rounds(5, 40))
    in_flight = p.read(0, 1 << 20)
    assert in_flight is not None
    expected = in_flight.read()
    assert clean(p, clock) is not None
    assert in_flight.read() == expected  # the swapped-out file is still open, whole


SOAK_FACTOR = int(os.environ.get("MINIKAFKA_SOAK_FACTOR", "1"))  # `make soak` raises it


def test_sigkill_while_cleaning_leaves_the_old_segments_or_the_new(
        spawn: Callable[..., Any], data_dir: Path) -> None:
    """A cleaner process killed at random moments (mid-pass, mid-recovery of the last kill's
    leftovers) or instead of a random rename (every step of a swap): after each kill
    the log opens with every key's latest record, and every record in it is one that was
    written, at its offset."""
    rng = random.Random(13)
    originals: dict[int, tuple[bytes | None, bytes | None]] = {}
    latest: Table = {}
    rounds_, progress = 12 * SOAK_FACTOR, 0
    for n in range(rounds_):
        with LogManager(data_dir, exclusive=True) as logs:
            if n == 0:
                logs.create_topic("t", 1, {"cleanup.policy": "compact", "segment.bytes": 1024})
            p = logs.partition("t", 0)
            rows = with_lasting_keys(rounds(30, 3, tag=f"r{n}-"), f"{n}")
            latest.update(produce(p, FakeClock(time.time()), rows, per_batch=2))
            before = consume(p)
            originals.update({r.offset: (r.key, r.value) for r in before})
            end = p.log_end_offset
        if n % 2:
            worker = spawn("clean", data_dir, "t", 400_000)
            worker.wait_ready()
            time.sleep(rng.uniform(0, 0.15))
            worker.kill()
        else:
            worker = spawn("clean", data_dir, "t", 1e9, rng.randint(1, 12))
            worker.proc.wait(10)
        with LogManager(data_dir, exclusive=True) as logs:
            p = logs.partition("t", 0)
            assert p.log_end_offset == end
            records = consume(p)
            for r in records:
                assert originals[r.offset] == (r.key, r.value), f"offset {r.offset} changed"
            assert table_of(records) == latest
            assert not [n for n in os.listdir(p.dir) if n.endswith(SWAP_LEFTOVERS)]
            progress += len(records) < len(before)
    assert progress >= 2, "the cleaner hardly ran: the test proves little"
    print(f"\ncleaner kill campaign: {rounds_} SIGKILLs, {len(originals)} records written, "
          f"{len(records)} kept (cleaning progressed in {progress} rounds), every key's latest "
          "among them")


def test_an_embedded_reader_in_another_process_reads_through_a_swap(
        open_log: Callable[..., LogManager], clock: FakeClock) -> None:
    """Embedded mode: the cleaning LogManager and the reading one share the directory as two
    processes do (each its own locks and file descriptors). The reader's view from before the
    swap stays whole; once it catches up (the log rolled), it sees the cleaned segments."""
    cleaner = open_log(clock=clock)
    cleaner.create_topic("t", 1, {"cleanup.policy": "compact", "segment.bytes": 2048})
    p = cleaner.partition("t", 0)
    latest = produce(p, clock, with_lasting_keys(rounds(12, 15), "a"), per_batch=3)
    reader = open_log(clock=clock).partition("t", 0)
    assert clean(p, clock) is not None
    latest.update(produce(p, clock, with_lasting_keys(rounds(12, 10, tag="w"), "b"),
                          per_batch=3))
    before = consume(reader)
    written = {r.offset: (r.key, r.value) for r in before}
    assert clean(p, clock, force=True) is not None  # merges segments
    assert [(r.offset, r.key, r.value) for r in consume(reader)] == [
        (r.offset, r.key, r.value) for r in before]  # the old files, still open
    latest.update(produce(p, clock, [(b"k0", b"new" * 30)] * 30))  # rolls
    records = consume(reader)
    for r in records:
        assert written.get(r.offset, (r.key, r.value)) == (r.key, r.value)
    assert table_of(records) == latest
    assert len(records) < len(before)


def test_the_cleaner_thread_stops_promptly_mid_pass(open_log: Callable[..., LogManager],
                                                    clock: FakeClock) -> None:
    """At 100 kB/s the pass would take seconds; stop() ends it at once, leaving the log as it
    was."""
    logs, p = compacted(open_log, clock)
    produce(p, clock, rounds(20, 100), per_batch=10)  # 150 kB
    before = consume(p)
    cleaner = LogCleaner(logs, CleanerConfig(io_max_bytes_per_second=100_000), backoff_ms=0)
    cleaner.start()
    time.sleep(0.2)
    started = time.monotonic()
    cleaner.stop()
    assert time.monotonic() - started < 0.5
    assert consume(p) == before
    assert not [n for n in os.listdir(p.dir) if n.endswith(".cleaned")]
    assert read_checkpoint(p.dir) == 0


def test_control_batches_pass_through_untouched() -> None:
    """Transaction markers are kept as they are until transactions come (their records' keys
    are the marker type, not the data's)."""
    raw = bytearray(encode_batch([Record(b"\x00\x00\x00\x00\x00\x00", b"\x00\x00\x00\x00")],
                                 producer_id=3, producer_epoch=0, base_sequence=-1))
    struct.pack_into(">h", raw, ATTRIBUTES_AT, CONTROL_BIT | TRANSACTIONAL_BIT)
    struct.pack_into(">I", raw, CRC_AT, crc32c(bytes(raw[CRC_START:])))
    offsets = OffsetMap(1 << 10)
    offsets.put(b"\x00\x00\x00\x00", 99)  # a later record of the same key, were it data
    kept, removed = retained_batch(read_header(raw), bytes(raw), offsets, {}, 0, 0)
    assert (kept, removed) == (bytes(raw), 0)


def test_reads_in_another_thread_during_swaps_see_only_written_records(
        open_log: Callable[..., LogManager], clock: FakeClock) -> None:
    """The broker's loop reads while the cleaner's thread swaps segments (reads take no lock):
    every read is whole batches of records written at their offsets."""
    _logs, p = compacted(open_log, clock, **{"segment.bytes": 1024})
    written: dict[int, tuple[bytes | None, bytes | None]] = {}
    lasting: frozenset[int] = frozenset()  # offsets of records no cleaning removes
    stop, failures = threading.Event(), []

    def read_all_the_time() -> None:
        rng, offset = random.Random(1), 0
        while not stop.is_set():  # a consumer following the log, from the start again at its end
            try:
                found = p.read(offset, rng.choice((1, 300, 2000)))
                records = [r for b in decode_batches(found.read() if found else b"")
                           for r in b.records if r.offset >= offset]
                for r in records:
                    if written.get(r.offset, (r.key, r.value)) != (r.key, r.value):
                        failures.append(f"offset {r.offset}: {r.value!r}")
                if records and any(offset <= o < records[0].offset for o in lasting):
                    failures.append(f"read({offset}) skipped to {records[0].offset}")
                offset = found.next_offset if found else 0
            except Exception as exc:  # reported below
                failures.append(repr(exc))
                offset = 0

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # interleave the threads as often as possible
    reader = threading.Thread(target=read_all_the_time)
    try:
        produce(p, clock, with_lasting_keys(rounds(10, 3, tag="a"), "a"))
        written.update({r.offset: (r.key, r.value) for r in consume(p)})
        reader.start()
        for n in range(15):
            rows = with_lasting_keys(rounds(10, 3, tag=f"r{n}-"), str(n))
            produce(p, clock, rows, per_batch=2)
            records = consume(p)
            written.update({r.offset: (r.key, r.value) for r in records})
            lasting |= {r.offset for r in records if r.key and r.key.startswith(b"once-")}
            clean(p, clock, force=True)
    finally:
        stop.set()
        reader.join()
        sys.setswitchinterval(old_interval)
    assert not failures, failures[:5]


def txn_append(p: Partition, clock: FakeClock, pid: int, rows: list[tuple[bytes, bytes | None]],
               seq: int = 0) -> int:
    """A transactional batch of producer `pid`; its base offset."""
    return p.append(encode_batch([Record(v, k, timestamp=clock.ms) for k, v in rows],
                                 producer_id=pid, producer_epoch=0, base_sequence=seq,
                                 transactional=True)).base_offset


def filler(p: Partition, clock: FakeClock, tag: str) -> None:
    """30 records of the same 30 keys each time (cleaning empties the older ones' segments)."""
    produce(p, clock, [(f"fill-{i}".encode(), tag.encode() * 60) for i in range(30)])


def committed_then_aborted(p: Partition, clock: FakeClock, keys: list[bytes]) -> int:
    """Key k's committed value, then producer 7's transaction writing `keys`, aborted; the
    transaction's first offset."""
    produce(p, clock, [(b"k", b"committed")])
    first = txn_append(p, clock, 7, [(key, b"aborted") for key in keys])
    p.write_marker(7, 0, False, 0)
    return first


def test_aborted_records_never_shadow_committed_ones_and_aborts_stay_indexed(
        open_log: Callable[..., LogManager], clock: FakeClock) -> None:
    """A key's committed value stays when a later write of it was aborted (read_committed
    consumers drop that one), and the abort stays listed once its segment is merged into
    another."""
    _logs, p = compacted(open_log, clock, **{"segment.bytes": 1024})
    filler(p, clock, "a")
    first = committed_then_aborted(p, clock, [b"k", b"j"])
    for n in range(3):
        filler(p, clock, f"b{n}")
        assert clean(p, clock, force=True) is not None
    assert (7, first) in p.aborted_transactions(0, p.last_stable_offset)
    assert b"committed" in [r.value for r in consume(p) if r.key == b"k"]
    holding = [s for s in p.segments if s.base_offset <= first][-1]
    assert holding.base_offset < first - 10  # the abort's segment went into an older one


def test_the_cleaner_stops_at_the_last_stable_offset(open_log: Callable[..., LogManager],
                                                    clock: FakeClock) -> None:
    """An ongoing transaction may yet abort: nothing from its first offset on is cleaned, nor
    used to clean what comes before."""
    _logs, p = compacted(open_log, clock, **{"segment.bytes": 1024})
    produce(p, clock, [(b"k", b"committed")])
    filler(p, clock, "a")
    pending = txn_append(p, clock, 8, [(b"k", b"pending")])
    filler(p, clock, "b")
    result = clean(p, clock)
    assert result is not None and result.end_offset <= pending == p.last_stable_offset
    assert [r.value for r in consume(p) if r.key == b"k"] == [b"committed", b"pending"]


def test_aborted_transactions_records_are_removed(open_log: Callable[..., LogManager],
                                                   clock: FakeClock) -> None:
    """Kafka's transaction-aware cleaning: an aborted transaction's records are never visible
    to read_committed consumers, so cleaning drops them, even for keys written nowhere else;
    the marker stays (it is what tells readers the range was aborted), and the producer's
    last batch stays as an empty header so its sequences are still known."""
    _logs, p = compacted(open_log, clock, **{"segment.bytes": 1024})
    first = committed_then_aborted(p, clock, [b"k", b"only-in-abort"])
    for n in range(3):
        filler(p, clock, f"b{n}")
    assert clean(p, clock, force=True) is not None
    values = {(r.key, r.value) for r in consume(p)}
    assert (b"k", b"committed") in values
    assert not {v for v in values if v[1] == b"aborted"}
    assert 7 in p.producers.producers  # its sequences survive the emptied batch
    assert any(h.is_control for h in _headers(p))
    assert (7, first) in p.aborted_transactions(0, p.last_stable_offset)
