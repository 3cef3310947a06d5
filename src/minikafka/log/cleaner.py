"""Log compaction: Kafka's LogCleaner, for topics whose cleanup.policy includes `compact`.

A pass over one partition (`clean_partition`, Kafka's Cleaner.doClean):
1. The dirty range runs from the cleaner checkpoint (how far the log is clean, `cleaner.checkpoint`
   in the partition's directory) to the first uncleanable offset: the active segment's base, or
   the first segment holding a record younger than min.compaction.lag.ms. A pass runs when the
   dirty share of the log reaches min.cleanable.dirty.ratio, or when a dirty record is older than
   max.compaction.lag.ms (KIP-354).
2. The dirty range's keys go into an offset map (the latest offset per key), bounded by
   `log.cleaner.dedupe.buffer.size` at Kafka's 24 bytes an entry: when the keys do not fit, the
   pass cleans up to the last batch that fit and the next pass goes on from there.
3. Every segment below that point is rewritten, in groups of consecutive segments that fit one
   segment (segment.bytes, int32 offsets): a record stays if it is its key's latest (one without
   a key, written before the topic was compacted, goes, as in Kafka). Offsets are
   kept, so consumers see gaps. A batch keeps its base offset, last offset delta, producer id,
   epoch and base sequence; an emptied batch goes, except the last batch of a producer, kept as
   an empty header so idempotent producers' state survives (Kafka's RETAIN_EMPTY). Records are
   copied byte for byte (the batch gets a new record count, max timestamp and CRC).
4. Tombstones (null values) stay `delete.retention.ms` after the pass that first cleaned them,
   Kafka's KIP-534 rule: that pass writes the delete horizon into the batch (attributes bit 6,
   the base timestamp then holds the horizon, record timestamp deltas are rebased), and a later
   pass past the horizon removes them.
5. Each group is written to `<base>.log.cleaned`, synced, then swapped in by
   `Partition.replace_segments` (crash-safe; see there) and the checkpoint moves on.

Transactions: the cleaner stops at the last stable offset; records of aborted transactions are
not put in the offset map (a later aborted write must not remove a key's committed value) and
are removed from the cleaned segments (Kafka's transaction-aware cleaning; a producer's last
batch stays as an empty header). Control batches (attributes bit 5) are kept untouched, and a
merged segment keeps the aborted-transaction index entries of the segments it replaces.
Left out: removing the markers themselves once no record of their transaction remains (Kafka's
second delete horizon); they are a few dozen bytes each.

A pass reads and writes at most `io.max.bytes.per.second` (Kafka's Throttler), hands the GIL to
the broker's event loop after every batch, and stops between batches when asked to (`Stop`),
leaving the log as it was (what it swapped in already stays).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..compression import Compression, compress, decompress
from ..errors import CorruptRecordError, KafkaError
from ..records import (
    COMPRESSION_MASK,
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    TIMESTAMP_TYPE_BIT,
    BatchHeader,
    decode_varint,
    encode_varint,
    read_header,
    set_crc,
)
from .config import LONG_MAX
from .durable import write_atomically
from .manager import LogManager
from .partition import INT32_MAX, Partition, suffixed
from .segment import CLEANED, LogSegment

log = logging.getLogger(__name__)

CLEANER_CHECKPOINT = "cleaner.checkpoint"
DELETE_HORIZON_BIT = 0x40  # KIP-534: the base timestamp is the batch's delete horizon
ENTRY_BYTES = 24  # Kafka's SkimpyOffsetMap: a 16-byte MD5 of the key and an 8-byte offset
LOAD_FACTOR = 0.9  # Kafka's log.cleaner.io.buffer.load.factor
_READ_CHUNK = 1 << 20
YIELD_SECONDS = 0.001  # the cleaner's longest hold of the GIL while the event loop may want it


class Stop(Exception):
    """The cleaner is shutting down: the pass is abandoned, the log left as it was."""


@dataclass(frozen=True, slots=True)
class CleanerConfig:
    """Kafka's broker settings for the cleaner itself (`log.cleaner.*`) and their defaults. Those
    that are topic configs' defaults (min.cleanable.dirty.ratio, delete.retention.ms, ...) reach
    the cleaner through each topic's config (TopicConfig.broker_defaults)."""

    io_max_bytes_per_second: float = 1.7976931348623157e308
    dedupe_buffer_size: int = 128 * 1024 * 1024


class CleanResult(NamedTuple):
    bytes_read: int
    bytes_written: int
    records_removed: int
    end_offset: int  # the new cleaner checkpoint


class Throttler:
    """Kafka's Throttler: sleeps so the bytes counted stay under `rate` per second; `stop` cuts
    a sleep short (and `check` raises `Stop` once it is set)."""

    def __init__(self, rate: float, stop: threading.Event | None = None) -> None:
        self.rate = rate
        self.stop = stop or threading.Event()
        self._start = self._yielded = time.monotonic()
        self._bytes = 0

    def check(self) -> None:
        if self.stop.is_set():
            raise Stop

    def pause(self) -> None:
        """Between batches: `check`, and every YIELD_SECONDS hand the GIL over (sleep(0)), so
        the broker's event loop waits that long for it at most, not the 5 ms switch interval."""
        self.check()
        now = time.monotonic()
        if now - self._yielded >= YIELD_SECONDS:
            time.sleep(0)
            self._yielded = now

    def account(self, n: int) -> None:
        self.check()
        self._bytes += n
        ahead = self._bytes / self.rate - (time.monotonic() - self._start)
        if ahead > 0 and self.stop.wait(ahead):
            raise Stop


class OffsetMap:
    """The latest offset of each key, by the key's MD5 (Kafka's SkimpyOffsetMap), holding as many
    entries as `memory` bytes hold at Kafka's 24 bytes an entry and load factor. (A Python dict
    entry costs more, ~5 times that: the setting bounds the count, and the memory with it.)"""

    def __init__(self, memory: int) -> None:
        self.capacity = max(int(memory // ENTRY_BYTES * LOAD_FACTOR), 1)
        self._offsets: dict[bytes, int] = {}

    def __len__(self) -> int:
        return len(self._offsets)

    def put(self, key: bytes, offset: int) -> None:
        self._offsets[hashlib.md5(key, usedforsecurity=False).digest()] = offset

    def get(self, key: bytes) -> int:
        return self._offsets.get(hashlib.md5(key, usedforsecurity=False).digest(), -1)


# --- the checkpoint -----------------------------------------------------------------------------


def read_checkpoint(directory: Path) -> int:
    """How far the partition is clean (0: nothing cleaned yet, or the file is unreadable)."""
    try:
        return int((directory / CLEANER_CHECKPOINT).read_text())
    except (OSError, ValueError):
        return 0


def write_checkpoint(directory: Path, offset: int) -> None:
    write_atomically(directory / CLEANER_CHECKPOINT, str(offset))


# --- records, byte for byte ---------------------------------------------------------------------


class RawRecord(NamedTuple):
    """One record of a batch as stored: its bytes, and what cleaning decides on."""

    raw: memoryview  # length varint included
    offset: int
    key: bytes | None
    tombstone: bool
    ts_at: int  # position of the timestamp delta varint in `raw`
    ts_end: int


def raw_records(header: BatchHeader, payload: bytes) -> list[RawRecord]:
    """The records of a batch (payload: its bytes after the header, maybe compressed)."""
    data = memoryview(decompress(header.compression, payload) if header.compression
                      else payload)
    out: list[RawRecord] = []
    pos = 0
    for _ in range(header.record_count):
        length, body = decode_varint(data, pos)
        end = body + length
        ts_at = body + 1  # after the record's attributes byte
        _ts, ts_end = decode_varint(data, ts_at)
        offset_delta, at = decode_varint(data, ts_end)
        key_len, at = decode_varint(data, at)  # -1: null
        key = bytes(data[at:at + key_len]) if key_len >= 0 else None
        at += max(key_len, 0)
        value_len, _ = decode_varint(data, at)
        out.append(RawRecord(data[pos:end], header.base_offset + offset_delta, key,
                             value_len < 0, ts_at - pos, ts_end - pos))
        pos = end
    return out


def _rebased(record: RawRecord, shift: int) -> bytes:
    """The record with its timestamp delta moved by -shift (its batch's base timestamp moved by
    +shift), so its timestamp stays the same."""
    raw = record.raw
    _length, body = decode_varint(raw, 0)
    delta, _ = decode_varint(raw, record.ts_at)
    inner = b"".join((raw[body:record.ts_at], encode_varint(delta - shift),
                      raw[record.ts_end:]))
    return encode_varint(len(inner)) + inner


def _header_bytes(header: BatchHeader, payload: bytes) -> bytes:
    """A batch of `header` (its CRC and length computed here) around `payload`."""
    batch = bytearray(HEADER.pack(*header._replace(batch_length=HEADER_SIZE - LOG_OVERHEAD
                                                   + len(payload), crc=0)))
    batch += payload
    set_crc(batch)
    return bytes(batch)


def rewrite_batch(header: BatchHeader, kept: list[RawRecord], horizon: int | None) -> bytes:
    """The batch with only `kept` records; with a new delete horizon when `horizon` is given."""
    attributes, base_ts, records = header.attributes, header.base_timestamp, kept
    if horizon is not None:
        attributes |= DELETE_HORIZON_BIT
        base_ts = horizon
    body = b"".join(_rebased(r, base_ts - header.base_timestamp) if horizon is not None
                    else bytes(r.raw) for r in records)
    if not records:  # Kafka's writeEmptyHeader: no records, no codec
        attributes &= ~COMPRESSION_MASK
    elif header.compression:
        body = compress(Compression(header.compression), body)
    max_ts = header.max_timestamp
    if records and not header.attributes & TIMESTAMP_TYPE_BIT:
        max_ts = max(header.base_timestamp + decode_varint(r.raw, r.ts_at)[0] for r in records)
    return _header_bytes(header._replace(attributes=attributes, base_timestamp=base_ts,
                                         max_timestamp=max_ts, record_count=len(records)),
                         body)


def has_delete_horizon(header: BatchHeader) -> bool:
    return bool(header.attributes & DELETE_HORIZON_BIT)


# --- a pass over one partition ------------------------------------------------------------------


def _batches(segment: LogSegment, throttle: Throttler) -> Iterator[tuple[BatchHeader, bytes]]:
    """Every batch of a closed segment with its bytes, read in chunks at the throttled rate."""
    pos, end = 0, segment.size
    while end - pos >= HEADER_SIZE:
        chunk = os.pread(segment.fd, min(_READ_CHUNK, end - pos), pos)
        at = 0
        while len(chunk) - at >= HEADER_SIZE:
            header = read_header(chunk, at)
            if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
                raise CorruptRecordError(f"{segment.log_path}: no batch at position {pos + at}")
            if at + header.size > len(chunk):
                break
            yield header, chunk[at:at + header.size]
            throttle.pause()
            at += header.size
        if at == 0:  # one batch larger than a chunk
            header = read_header(chunk)
            chunk = os.pread(segment.fd, header.size, pos)
            yield header, chunk
            at = header.size
        throttle.account(at)
        pos += at


def first_uncleanable_offset(segments: list[LogSegment], first_dirty: int, min_lag_ms: int,
                             now_ms: int, last_stable_offset: int) -> int:
    """The active segment's base, the last stable offset (an ongoing transaction may yet
    abort), or the base of the first dirty segment holding a record younger than
    min.compaction.lag.ms, whichever comes first (Kafka's LogCleanerManager.cleanableOffsets)."""
    for segment in segments[:-1]:
        if (segment.next_offset > first_dirty and min_lag_ms > 0
                and segment.max_timestamp > now_ms - min_lag_ms):
            return min(segment.base_offset, last_stable_offset)
    return min(segments[-1].base_offset, last_stable_offset)


def aborted_ranges(segments: list[LogSegment]) -> dict[int, list[tuple[int, int]]]:
    """[first offset, marker offset) of each aborted transaction, by producer id (from the
    segments' aborted-transaction indexes)."""
    ranges: dict[int, list[tuple[int, int]]] = {}
    for segment in segments:
        for entry in segment.txn_index.entries:
            ranges.setdefault(entry.producer_id, []).append((entry.first_offset,
                                                             entry.last_offset))
    return ranges


def _is_aborted(header: BatchHeader, aborted: dict[int, list[tuple[int, int]]]) -> bool:
    return header.is_transactional and any(
        first <= header.base_offset < last for first, last in aborted.get(header.producer_id, ()))


def _group(segments: list[LogSegment], max_bytes: int) -> list[list[LogSegment]]:
    """Consecutive segments together while they fit one segment (Kafka's groupSegmentsBySize)."""
    groups: list[list[LogSegment]] = []
    for segment in segments:
        group = groups[-1] if groups else None
        if (group is not None and sum(s.size for s in group) + segment.size <= max_bytes
                and segment.next_offset - 1 - group[0].base_offset <= INT32_MAX):
            group.append(segment)
        else:
            groups.append([segment])
    return groups


def clean_partition(partition: Partition, broker: CleanerConfig, now_ms: int,
                    throttle: Throttler | None = None, force: bool = False
                    ) -> CleanResult | None:
    """One pass over a compacted partition; None when it is not due (see the module doc) or
    has nothing dirty. `force`: whatever its dirty ratio (an operator asked)."""
    config = partition.config
    if not config.compacts:
        return None
    throttle = throttle or Throttler(broker.io_max_bytes_per_second)
    segments = list(partition.segments)
    first_dirty = read_checkpoint(partition.dir)
    if not partition.log_start_offset <= first_dirty <= partition.log_end_offset:
        first_dirty = partition.log_start_offset  # Kafka's rule: a checkpoint out of range resets
    uncleanable = first_uncleanable_offset(segments, first_dirty, config.min_compaction_lag_ms,
                                           now_ms, partition.last_stable_offset)
    dirty = [s for s in segments if s.next_offset > first_dirty and s.base_offset < uncleanable
             and s.size]
    if not dirty:
        return None
    dirty_bytes = sum(s.size for s in dirty)
    clean_bytes = sum(s.size for s in segments if s.next_offset <= first_dirty)
    overdue = (config.max_compaction_lag_ms < LONG_MAX
               and 0 <= dirty[0].first_timestamp < now_ms - config.max_compaction_lag_ms)
    if (dirty_bytes / (dirty_bytes + clean_bytes) < config.min_cleanable_dirty_ratio
            and not (overdue or force)):
        return None
    offsets = OffsetMap(broker.dedupe_buffer_size)
    aborted = aborted_ranges(segments)
    end, read = _build_offset_map(dirty, first_dirty, uncleanable, offsets, aborted, throttle)
    if end <= first_dirty:
        log.warning("%s-%d: the dedupe buffer (%d bytes) holds fewer keys than one batch; "
                    "raise log.cleaner.dedupe.buffer.size", partition.topic, partition.index,
                    broker.dedupe_buffer_size)
        return None
    last_batches = {pid: p.batches[-1].last_offset
                    for pid, p in list(partition.producers.producers.items()) if p.batches}
    horizon = now_ms + config.delete_retention_ms
    written = removed = 0
    for group in _group([s for s in segments[:-1] if s.base_offset < end],
                        min(config.segment_bytes, INT32_MAX)):
        cleaned = suffixed(group[0].log_path, CLEANED)
        try:
            size, gone, read_here = _clean_group(group, cleaned, offsets, aborted, last_batches,
                                                 now_ms, horizon, throttle)
        except BaseException:
            cleaned.unlink(missing_ok=True)
            raise
        read += read_here
        if not partition.replace_segments(group, cleaned):
            return None  # the log changed under the pass (retention, deletion): next time
        written += size
        removed += gone
    write_checkpoint(partition.dir, end)
    return CleanResult(read, written, removed, end)


def _build_offset_map(dirty: list[LogSegment], first_dirty: int, uncleanable: int,
                      offsets: OffsetMap, aborted: dict[int, list[tuple[int, int]]],
                      throttle: Throttler) -> tuple[int, int]:
    """Map the keys of the dirty batches; return (the offset after the last batch mapped, bytes
    read). Stops before a batch whose keys would overfill the map. Records of aborted
    transactions are not mapped: they must not make a committed record look superseded."""
    end, read = first_dirty, 0
    for segment in dirty:
        for header, raw in _batches(segment, throttle):
            read += len(raw)
            if (header.next_offset <= first_dirty or header.is_control
                    or _is_aborted(header, aborted)):
                end = max(end, min(header.next_offset, uncleanable))
                continue
            if header.base_offset >= uncleanable:
                return end, read
            if len(offsets) + header.record_count > offsets.capacity:
                return end, read
            for record in raw_records(header, raw[HEADER_SIZE:]):
                if record.key is not None and record.offset >= first_dirty:
                    offsets.put(record.key, record.offset)
            end = header.next_offset
    return end, read


def _clean_group(group: list[LogSegment], cleaned: Path, offsets: OffsetMap,
                 aborted: dict[int, list[tuple[int, int]]], last_batches: dict[int, int],
                 now_ms: int, horizon: int, throttle: Throttler) -> tuple[int, int, int]:
    """Write the group's retained batches to `cleaned` and sync it; (bytes written, records
    removed, bytes read)."""
    written = removed = read = 0
    with open(cleaned, "wb") as out:
        for segment in group:
            for header, raw in _batches(segment, throttle):
                read += len(raw)
                batch, gone = retained_batch(header, raw, offsets, last_batches, now_ms,
                                             horizon, _is_aborted(header, aborted))
                removed += gone
                if batch:
                    out.write(batch)
                    written += len(batch)
                    throttle.account(len(batch))
        out.flush()
        os.fsync(out.fileno())
    return written, removed, read


def retained_batch(header: BatchHeader, raw: bytes, offsets: OffsetMap,
                   last_batches: dict[int, int], now_ms: int, horizon: int,
                   aborted: bool = False) -> tuple[bytes, int]:
    """(what stays of one batch, maybe nothing; records removed). An aborted transaction's
    batch keeps none: no read_committed consumer ever sees its records (its ABORT marker has
    been written, or the batch would not be known as aborted)."""
    if header.is_control:
        return raw, 0
    records = raw_records(header, raw[HEADER_SIZE:])
    expired = has_delete_horizon(header) and header.base_timestamp <= now_ms
    kept = [] if aborted else [r for r in records
                               if r.key is not None and r.offset >= offsets.get(r.key)
                               and not (r.tombstone and expired)]
    gone = len(records) - len(kept)
    new_horizon = horizon if (not has_delete_horizon(header)
                              and any(r.tombstone for r in kept)) else None
    if not gone and new_horizon is None:
        return raw, 0
    if not kept and last_batches.get(header.producer_id) != header.last_offset:
        return b"", gone
    return rewrite_batch(header, kept, new_horizon), gone


# --- the broker's thread ------------------------------------------------------------------------


class LogCleaner:
    """A thread that cleans the compacted partitions of a LogManager every `backoff_ms` (Kafka's
    CleanerThread, one of them). `stop()` returns within a batch's work."""

    def __init__(self, logs: LogManager, config: CleanerConfig, backoff_ms: int,
                 on_cleaned: Callable[[CleanResult], None] | None = None) -> None:
        self.logs = logs
        self.config = config
        self.backoff_ms = backoff_ms
        self.on_cleaned = on_cleaned
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="minikafka-cleaner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.backoff_ms / 1000):
            try:
                self.clean_once()
            except Stop:
                return
            except (OSError, KafkaError) as exc:  # listing topics, opening partitions
                log.warning("log cleaner pass failed: %s", exc)

    def clean_once(self) -> list[CleanResult]:
        """A pass over every compacted partition that is due."""
        results = []
        throttle = Throttler(self.config.io_max_bytes_per_second, self._stop)
        for partition in self.logs.compacted_partitions():
            throttle.check()
            try:
                result = clean_partition(partition, self.config, int(self.logs.clock() * 1000),
                                         throttle)
            except Stop:
                raise
            except Exception:  # as Kafka's cleaner: this partition fails, the others go on
                log.exception("cleaning %s-%d failed", partition.topic, partition.index)
                continue
            if result is not None:
                results.append(result)
                if self.on_cleaned is not None:
                    self.on_cleaned(result)
                log.info("cleaned %s-%d up to offset %d: %d bytes read, %d written, %d records "
                         "removed", partition.topic, partition.index, result.end_offset,
                         result.bytes_read, result.bytes_written, result.records_removed)
        return results
