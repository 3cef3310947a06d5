"""One partition's log as its single writer keeps it: an ordered run of segments with a log start
offset and a high watermark (Kafka's LocalLog and UnifiedLog, on one node).

Beside the segments, `partition.checkpoint` says where the log stood at the last roll,
DeleteRecords, retention or close, or after every 64 MiB appended: its end and the boot that wrote
it, its log start offset, and its recovery point (everything before it is fsynced). It is replaced
atomically, so a crash leaves the old or the new one. Opening trusts what it says and validates
only what comes after: after a process crash everything the checkpoint covers is in the page
cache, after an OS crash only what was flushed before the recovery point is.

Other processes appending to the same partition are `SharedPartition`'s business (shared.py).
"""

from __future__ import annotations

import bisect
import logging
import operator
import os
import struct
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import Final, NamedTuple

from crc32c import crc32c

from ..compression import Compression
from ..errors import (
    CorruptRecordError,
    InvalidTimestampError,
    KafkaStorageError,
    MessageTooLargeError,
    OffsetOutOfRangeError,
)
from ..records import (
    HEADER_SIZE,
    BatchHeader,
    assign_offsets,
    decode_batch,
    decode_marker,
    decode_records,
    encode_batch,
    encode_marker,
    read_header,
    set_log_append_time,
    validate_batch,
)
from .config import TopicConfig
from .durable import storage_error, sync_directory, write_atomically
from .producer_state import PRODUCER_ID_EXPIRATION_MS, ProducerInfo, ProducerStateManager
from .segment import CLEANED, DELETED, SWAP, Damage, FileSlice, LogSegment, segment_name
from .txn_index import AbortedTxn, TransactionIndex
from .validator import NO_TIMESTAMP, validate_records

log = logging.getLogger(__name__)

LEADER_EPOCH: Final = 0
CHECKPOINT = "partition.checkpoint"
_STATE = struct.Struct(">qqqqqq16s")
_CRC = struct.Struct(">I")
STATE_SIZE = _STATE.size + _CRC.size
# Bounds what a restart after a crash must validate. (Final: mypyc inlines such constants.)
_CHECKPOINT_EVERY_BYTES: Final = 64 * 1024 * 1024
INT32_MAX: Final = 2**31 - 1  # index entries hold offsets relative to their segment, and positions
_BASE_OFFSET = operator.attrgetter("base_offset")


def _boot_id() -> bytes:
    try:
        with open("/proc/sys/kernel/random/boot_id", "rb") as f:
            return bytes.fromhex(f.read().decode().strip().replace("-", ""))[:16]
    except (OSError, ValueError):
        return bytes(16)


BOOT_ID = _boot_id()


class PartitionState(NamedTuple):
    """Where a partition's log stood, as stored with a CRC (a checkpoint, or a publication)."""

    active_base: int
    log_end_offset: int
    active_size: int
    log_start_offset: int
    recovery_base: int
    recovery_position: int
    boot_id: bytes

    def pack(self) -> bytes:
        raw = _STATE.pack(*self)
        return raw + _CRC.pack(crc32c(raw))

    @classmethod
    def unpack(cls, raw: bytes) -> PartitionState | None:
        """The state `raw` starts with; None if it is short or fails its CRC."""
        if len(raw) < STATE_SIZE:
            return None
        if crc32c(raw[: _STATE.size]) != _CRC.unpack_from(raw, _STATE.size)[0]:
            return None
        return cls._make(_STATE.unpack_from(raw))


class AppendInfo:
    """Where an append put its batch. (Plain classes here, not named tuples or dataclasses:
    compiled, they are built without calling interpreted code.)"""

    __slots__ = ("base_offset", "duplicate", "last_offset", "log_append_time", "log_start_offset")

    def __init__(self, base_offset: int, last_offset: int, log_append_time: int = -1,
                 log_start_offset: int = 0, duplicate: bool = False) -> None:
        self.base_offset = base_offset
        self.last_offset = last_offset
        self.log_append_time = log_append_time
        self.log_start_offset = log_start_offset
        self.duplicate = duplicate


OnWritten = Callable[[KafkaStorageError | None], None]  # a held batch's write: how it went


class _Held:
    """Batches `append` held until `write_held`: the log end and unsaved bytes before them, and
    whom to tell how their write went (each once)."""

    __slots__ = ("callbacks", "log_end_offset", "unsaved_bytes")

    def __init__(self, log_end_offset: int, unsaved_bytes: int) -> None:
        self.log_end_offset = log_end_offset
        self.unsaved_bytes = unsaved_bytes
        self.callbacks: list[OnWritten] = []


class Partition:
    """Appends validated batches, assigns their offsets, and reads them back as file slices."""

    _replaces_active_segment = True  # no other process has its file open

    def __init__(self, topic: str, index: int, directory: Path,
                 config: Callable[[], TopicConfig], *, clock: Callable[[], float] = time.time,
                 producer_id_expiration_ms: int = PRODUCER_ID_EXPIRATION_MS) -> None:
        self.topic = topic
        self.index = index
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._config = config
        self._clock = clock
        self._mutex = threading.RLock()
        self._flush_lock = threading.Lock()
        self.segments: list[LogSegment] = []
        self.log_start_offset = 0
        self.log_end_offset = 0
        self.producers = ProducerStateManager(self.dir / "producer.snapshot",
                                              producer_id_expiration_ms)
        self._recovery_point = (0, 0)
        self._flushed_offset = 0
        self._unsaved_bytes = 0  # appended since the last checkpoint
        self._held: _Held | None = None  # batches `append` held for `write_held`
        # (offset, segment, position) of the last read's end; the segment itself, not its base:
        # a cleaner's swap puts another file at the same base
        self._read_hint: tuple[int, LogSegment | None, int] = (-1, None, 0)
        self.recovered_bytes = 0  # bytes cut from torn or corrupt tails when opening
        self._saving_failed = False  # the last checkpoint or snapshot write failed (`_save_work`)
        self.damaged_bytes = 0  # bytes of damage cut out of the log's middle (set aside)
        self._closed = False
        self._open()

    # --- properties ---------------------------------------------------------------------------

    @property
    def config(self) -> TopicConfig:
        return self._config()

    @property
    def high_watermark(self) -> int:
        """One node, no followers: everything appended is committed."""
        return self.log_end_offset

    @property
    def max_timestamp(self) -> int:
        """The largest record timestamp in the log (-1 when empty); ListOffsets MAX_TIMESTAMP."""
        return max((s.max_timestamp for s in self.segments), default=-1)

    @property
    def size(self) -> int:
        return sum(s.size for s in self.segments)

    @property
    def holding(self) -> bool:
        """Batches are held for `write_held` (the last append was one of them)."""
        return self._held is not None

    @property
    def _active(self) -> LogSegment:
        return self.segments[-1]

    def _writing(self) -> AbstractContextManager[object]:
        """Held while changing the log (appends come from the broker's loop, flushes and
        retention from other threads)."""
        return self._mutex

    # --- the checkpoint -----------------------------------------------------------------------

    def _current_state(self) -> PartitionState:
        active = self._active
        return PartitionState(active.base_offset, self.log_end_offset, active.size,
                              self.log_start_offset, *self._recovery_point, BOOT_ID)

    def _saved_state(self) -> PartitionState | None:
        try:
            return PartitionState.unpack((self.dir / CHECKPOINT).read_bytes())
        except FileNotFoundError:
            return None

    def _checkpoint(self, state: PartitionState | None = None) -> None:
        """Save `state` (default: the current one); raises KafkaStorageError if it cannot."""
        write_atomically(self.dir / CHECKPOINT, (state or self._current_state()).pack())
        self._unsaved_bytes = 0

    def _save_work(self, save: Callable[[], None]) -> None:
        """Run `save`, a write that only saves recovery work (a checkpoint that no change
        depends on, a producer snapshot): if the disk refuses it, the log goes on without it,
        with one warning until such a write works again."""
        try:
            save()
        except KafkaStorageError as exc:
            if not self._saving_failed:
                log.warning("%s-%d: %s; going on without it (a restart validates more)",
                            self.topic, self.index, str(exc))  # its frames hold files
            self._saving_failed = True
        else:
            self._saving_failed = False

    # --- opening and recovery -----------------------------------------------------------------

    def _segment_bases(self) -> list[int]:
        return sorted(int(n[:-4]) for n in os.listdir(self.dir)
                      if n.endswith(".log") and n[:-4].isdigit())

    def _new_segment(self, base: int) -> LogSegment:
        return LogSegment(self.dir, base, self.config.index_interval_bytes)

    def _open(self) -> None:
        self._finish_swap()
        state = self._saved_state()
        bases = self._segment_bases()
        if not bases:
            bases = [state.log_start_offset if state else 0]
        if state and state.boot_id == BOOT_ID and state.active_base in bases:
            # Same boot: the page cache holds everything written before the state was saved.
            start = (state.active_base, state.active_size)
        elif state and state.recovery_base in bases:
            start = (state.recovery_base, state.recovery_position)
        else:
            start = (bases[0], 0)
        segments: list[LogSegment] = []
        for i, base in enumerate(bases):
            segment = self._new_segment(base)
            if base < start[0] and segment.load():
                segments.append(segment)
                continue
            upper = bases[i + 1] if i + 1 < len(bases) else None
            segments.append(self._recover(segment, start[1] if base == start[0] else 0, upper))
        self.segments = segments
        self.log_end_offset = self._active.next_offset
        floor = state.log_start_offset if state else 0
        self.log_start_offset = min(max(floor, segments[0].base_offset), self.log_end_offset)
        self._drop_segments(lambda _s, next_base: next_base <= self.log_start_offset)
        if state and any(s.base_offset == state.recovery_base for s in self.segments):
            self._recovery_point = (state.recovery_base, state.recovery_position)
        else:
            self._recovery_point = (self.segments[0].base_offset, 0)
        self._replay_producers(min((s.recovered_from for s in self.segments
                                    if s.recovered_from >= 0), default=None))

    def _recover(self, segment: LogSegment, start: int, upper: int | None) -> LogSegment:
        """Validate `segment` from `start`: a torn tail of the last segment is what a crash
        leaves, and is cut; any other damage is cut out of its segment, loudly (`_set_aside`).
        Returns the segment, reopened if its file was replaced."""
        damage = segment.recover(start, upper)
        if not damage:
            return segment
        if upper is not None or (self._replaces_active_segment and damage[0].resumed_at >= 0):
            return self._set_aside(segment, damage, upper)
        cut = os.fstat(segment.fd).st_size - damage[0].position
        if damage[0].resumed_at >= 0:  # only where other processes may be appending to it
            log.warning("damaged active log segment %s: %d bytes from position %d cut, valid "
                        "batches after the damage (from offset %d) included", segment.log_path,
                        cut, damage[0].position, damage[0].resumed_at)
        else:
            log.info("%s: cut a torn tail of %d bytes at position %d", segment.log_path, cut,
                     damage[0].position)
        segment.cut(damage[0].position)
        segment.recover(start, upper)  # forget the batches after the cut
        self.recovered_bytes += cut
        return segment

    def _set_aside(self, segment: LogSegment, damage: list[Damage], upper: int | None
                   ) -> LogSegment:
        """Cut damaged spans out of a segment, keeping later batches and later segments: the
        offsets they held become a gap that reads step over. The original file is kept."""
        aside = segment.set_aside(damage)
        for d in damage:
            end = d.resumed_at if d.resumed_at >= 0 else upper
            lost = f"offsets {d.first_offset} to {end - 1}" if end is not None else (
                f"offsets from {d.first_offset}")
            log.warning("damaged log segment %s: %d bytes at position %d hold no valid batch "
                        "and were cut out (%s are lost, the batches around them kept); the "
                        "original file is kept as %s", segment.log_path, d.size, d.position,
                        lost, aside.name)
            self.damaged_bytes += d.size
            self.recovered_bytes += d.size
        fresh = self._new_segment(segment.base_offset)
        fresh.rebuild_indexes()
        fresh.recovered_from = segment.recovered_from
        return fresh

    def _repair(self, segment: LogSegment) -> None:
        """Damage found on read (a batch length that leads nowhere): cut it out of its segment,
        leaving the log end where it is."""
        with self._writing():
            if segment not in self.segments:
                return  # repaired or deleted meanwhile
            i = self.segments.index(segment)
            upper = self.segments[i + 1].base_offset if i + 1 < len(self.segments) else None
            if os.stat(segment.log_path).st_ino != os.fstat(segment.fd).st_ino:
                segment.close()  # another process repaired it: read its file
                fresh = self._new_segment(segment.base_offset)
                fresh.load()
            else:
                fresh = self._recover(segment, 0, upper)
            self.segments = [*self.segments[:i], fresh, *self.segments[i + 1:]]
            self._read_hint = (-1, None, 0)

    def _replay_producers(self, recovered_from: int | None) -> None:
        """Rebuild producer state from the snapshot and the batch headers after it. Recovery
        validated the log from `recovered_from` on, where abort entries may be missing (never
        flushed): the replay must cover that to add them again from the markers, and a snapshot
        past it is then no use."""
        start = self.producers.load_snapshot(self.log_end_offset)
        if recovered_from is not None and recovered_from < start:
            self.producers.clear()
            start = 0
        self._replay_headers(max(start, self.log_start_offset))
        self._expire_producers()

    def _expire_producers(self) -> None:
        self.producers.remove_expired(int(self._clock() * 1000))

    def _replay_headers(self, offset: int, writer: bool = True) -> None:
        """Feed the producer state the headers of the batches from `offset` on, and the markers
        among them; a `writer` also adds the index entries of aborts missing from it."""
        i = max(bisect.bisect_right(self.segments, offset, key=_BASE_OFFSET) - 1, 0)
        for segment in self.segments[i:]:
            for pos, header in segment.headers(0):
                if header.last_offset < offset:
                    continue
                if not header.is_control:
                    self.producers.update(header)
                    continue
                commit, coordinator_epoch = decode_marker(os.pread(segment.fd, header.size, pos))
                aborted = None if commit else self._aborted_txn(header)
                if writer and aborted and not segment.txn_index.has(aborted.last_offset):
                    segment.txn_index.append(aborted)
                self.producers.complete(header, coordinator_epoch)

    # --- appending ----------------------------------------------------------------------------

    def append(self, batch: bytes | bytearray | memoryview, on_written: OnWritten | None = None
               ) -> AppendInfo:
        """Validate one RecordBatch v2, give it the next offsets, and write it.

        With `on_written`, a batch without a producer id may be held instead: taken into the log
        (offsets, log end) but written later by `write_held`, in one write with every batch held
        since, which then tells `on_written` how that went (once for all the batches it was given
        with, while none was written in between). Whoever holds must call write_held
        before acknowledging the batch, and within the same stretch of work: until then the log
        is locked against other threads, which so see it either without the held batches or
        with them written. (A batch with a producer id is never held: a failed write would have
        to undo its producer state too.)"""
        buf = batch if isinstance(batch, bytearray) else bytearray(batch)
        header = validate_batch(buf)
        if header.size != len(buf):
            raise CorruptRecordError("a produce request must carry exactly one record batch "
                                     "per partition")
        config = self.config
        if len(buf) > config.max_message_bytes:
            raise MessageTooLargeError(f"record batch of {len(buf)} bytes is larger than "
                                       f"max.message.bytes={config.max_message_bytes}")
        header = validate_records(buf, header, keys_required="compact" in config.cleanup_policy)
        if config.compression_type != "producer":
            buf, header = _recompressed(buf, header, config.compression_type)
        if config.checks_timestamps:
            self._check_timestamps(header, config)
        with self._writing():
            idempotent = header.producer_id >= 0 and header.base_sequence >= 0
            hold = (on_written is not None and header.producer_id < 0
                    and self._replaces_active_segment  # no other process reads the file
                    and self._unsaved_bytes + len(buf) < _CHECKPOINT_EVERY_BYTES)
            if self._held is not None and not hold:
                self.write_held()  # a batch written now goes after those held
            if idempotent:
                original = self.producers.check(header)
                if original is not None:
                    return AppendInfo(original.base_offset, original.last_offset, -1,
                                      self.log_start_offset, True)
            log_append_time = -1
            if config.message_timestamp_type == "LogAppendTime":
                log_append_time = int(self._clock() * 1000)
                set_log_append_time(buf, log_append_time)
            placed = self._placed(buf, header, log_append_time)
            segment = self._active
            if self._should_roll(segment, len(buf), placed, config):
                if self._held is not None:
                    self.write_held()  # the next segment starts after them
                    placed = self._placed(buf, header, log_append_time)  # (they may be gone)
                if self._should_roll(segment, len(buf), placed, config):
                    segment = self._roll()
            if on_written is not None and hold:
                self._hold(segment, buf, placed, on_written)
            else:
                segment.append(buf, placed)
            if idempotent:
                self.producers.update(placed)
            self.log_end_offset = placed.next_offset
            self._unsaved_bytes += len(buf)
            if self._unsaved_bytes >= _CHECKPOINT_EVERY_BYTES:
                self._save_work(self._checkpoint)
        return AppendInfo(placed.base_offset, placed.last_offset, log_append_time,
                          self.log_start_offset)

    def _placed(self, buf: bytearray, header: BatchHeader, log_append_time: int) -> BatchHeader:
        """Give the batch the next offsets; its header as written (BatchHeader's fields 0 and 8
        changed; made by tuple.__new__, as a named tuple's own __new__ and _replace are
        interpreted code)."""
        base = self.log_end_offset
        assign_offsets(buf, base, LEADER_EPOCH)
        fields = list(header)
        fields[0] = base
        fields[8] = max(header.max_timestamp, log_append_time)
        placed: BatchHeader = tuple.__new__(BatchHeader, fields)
        return placed

    def _hold(self, segment: LogSegment, buf: bytearray, header: BatchHeader,
              on_written: OnWritten) -> None:
        if self._held is None:
            self._mutex.acquire()  # released by write_held
            self._held = _Held(self.log_end_offset, self._unsaved_bytes)
        segment.hold(buf, header)
        callbacks = self._held.callbacks
        if not callbacks or callbacks[-1] != on_written:  # (equal: a method of one object)
            callbacks.append(on_written)

    def write_held(self) -> None:
        """Write the batches `append` held, in one write, and tell each one's `on_written` how
        that went (None, or the KafkaStorageError: the log is then as it was before them)."""
        held = self._held
        if held is None:
            return
        self._held = None
        error = None
        try:
            self._active.write_held()
        except BaseException as exc:
            self.log_end_offset, self._unsaved_bytes = held.log_end_offset, held.unsaved_bytes
            self._read_hint = (-1, None, 0)
            if not isinstance(exc, KafkaStorageError):
                raise
            error = exc
        finally:
            self._mutex.release()
        for on_written in held.callbacks:
            on_written(error)

    def _check_timestamps(self, header: BatchHeader, config: TopicConfig) -> None:
        """Kafka's LogValidator window: CreateTime timestamps within
        [now - message.timestamp.before.max.ms, now + message.timestamp.after.max.ms]. Checked
        on the batch's first and largest timestamps (the records' largest, as validated)."""
        now = int(self._clock() * 1000)
        for ts in (header.base_timestamp, header.max_timestamp):
            if ts != NO_TIMESTAMP and not (now - config.message_timestamp_before_max_ms <= ts
                                           <= now + config.message_timestamp_after_max_ms):
                raise InvalidTimestampError(
                    f"timestamp {ts} is out of range: it must be within "
                    f"[{now - config.message_timestamp_before_max_ms}, "
                    f"{now + config.message_timestamp_after_max_ms}]")

    def _should_roll(self, segment: LogSegment, incoming: int, header: BatchHeader,
                     config: TopicConfig) -> bool:
        """Kafka's rule: too big, index full, the incoming batch's offsets or position would not
        fit the index's int32 (relative to the segment's base), or its timestamp is segment.ms
        past the segment's first one. (Not the wall clock: a producer sending old timestamps
        would then get a new segment for every batch.)"""
        if segment.size == 0:
            return False
        if segment.size + incoming > min(config.segment_bytes, INT32_MAX):
            return True
        if header.last_offset - segment.base_offset > INT32_MAX:
            return True
        if len(segment.offset_index.keys) * 8 >= config.segment_index_bytes:
            return True
        first = segment.first_timestamp
        return first >= 0 and header.max_timestamp - first > config.roll_ms

    def _roll(self) -> LogSegment:
        """Start a new active segment at the log end, with the producer snapshot and the
        checkpoint that say where it starts. All or nothing: if a write fails, the new files go
        and KafkaStorageError is raised (retention's work is kept: a later open derives it from
        the files)."""
        base = self.log_end_offset
        paths = [self.dir / segment_name(base, suffix) for suffix in (".log", ".index",
                                                                      ".timeindex", ".txnindex")]
        for path in paths:
            # Files a crash left at this base (a half-made roll, a segment recovery cut off
            # but could not finish deleting) are not part of the log: start clean.
            path.unlink(missing_ok=True)
        try:
            segment = self._new_segment(base)
        except OSError as exc:
            for path in paths:
                path.unlink(missing_ok=True)
            raise storage_error(exc, f"creating segment {paths[0]}") from exc
        try:
            self._expire_producers()
            self.producers.write_snapshot(base)
            self._checkpoint(self._current_state()._replace(active_base=base, active_size=0))
        except KafkaStorageError:
            segment.delete()
            raise
        segment.next_offset = base
        self.segments = [*self.segments, segment]
        self._retain()
        return segment

    # --- transactions -------------------------------------------------------------------------

    def write_marker(self, producer_id: int, producer_epoch: int, commit: bool,
                     coordinator_epoch: int) -> int:
        """Append a COMMIT or ABORT marker for the producer's transaction; return its offset.
        An ABORT that ends an ongoing transaction gets its aborted-transaction index entry,
        written first (a marker in the log always has its entry) and cut back if the marker's
        write fails. An epoch older than the producer's raises InvalidProducerEpochError."""
        with self._writing():
            self.producers.check_epoch(producer_id, producer_epoch)
            base = self.log_end_offset
            now = int(self._clock() * 1000)
            buf = bytearray(encode_marker(producer_id, producer_epoch, commit, coordinator_epoch,
                                          now, base))
            assign_offsets(buf, base, LEADER_EPOCH)
            header = read_header(buf)
            segment = self._active
            if self._should_roll(segment, len(buf), header, self.config):
                segment = self._roll()
            aborted = None if commit else self._aborted_txn(header)
            if aborted:
                segment.txn_index.append(aborted)
            try:
                segment.append(buf, header)
            except BaseException:
                if aborted:
                    segment.txn_index.cut_back(aborted)
                raise
            self.producers.complete(header, coordinator_epoch)
            self.log_end_offset = header.next_offset
            self._unsaved_bytes += len(buf)
            return base

    def _aborted_txn(self, marker: BatchHeader) -> AbortedTxn | None:
        """The index entry of the transaction an ABORT `marker` ends (None if none is ongoing),
        with Kafka's last stable offset once it ended: the first offset of the oldest other
        ongoing transaction, else the offset after the marker."""
        ongoing = self.producers.ongoing
        first = ongoing.get(marker.producer_id)
        if first is None:
            return None
        others = (o for pid, o in ongoing.items() if pid != marker.producer_id)
        return AbortedTxn(marker.producer_id, first, marker.base_offset,
                          min(others, default=marker.next_offset))

    @property
    def last_stable_offset(self) -> int:
        """Below it every transaction is decided: the first offset of the oldest ongoing
        transaction, or the high watermark; never below the log start (a transaction whose
        first batches were deleted holds it there, as in Kafka)."""
        end = self.high_watermark
        first = self.producers.first_unstable_offset()
        return end if first is None else max(min(first, end), self.log_start_offset)

    def aborted_transactions(self, start: int, upper: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of each aborted transaction overlapping [start, upper).
        Its marker is at or after `start`, so in the segment holding `start` or a later one;
        the search ends at an entry whose last stable offset reaches `upper` (any later abort
        overlapping the range would have held that LSO down), as Kafka's does."""
        found: list[tuple[int, int]] = []
        segments = self.segments
        for segment in segments[max(bisect.bisect_right(segments, start, key=_BASE_OFFSET) - 1,
                                    0):]:
            for entry in segment.txn_index.entries:
                if entry.last_offset >= start and entry.first_offset < upper:
                    found.append((entry.producer_id, entry.first_offset))
                if entry.last_stable_offset >= upper:
                    return found
        return found

    def producer_states(self) -> list[ProducerInfo]:
        """The producers this partition knows, for DescribeProducers."""
        with self._mutex:
            return self.producers.states()

    # --- reading ------------------------------------------------------------------------------

    def read(self, offset: int, max_bytes: int, upper: int | None = None) -> FileSlice | None:
        """Whole batches from the one containing `offset`, at least one even past `max_bytes`;
        None at the high watermark. With `upper` (read_committed passes the last stable
        offset) only batches below it, and None from it on."""
        end = self.high_watermark
        if offset == end:
            return None
        if offset < self.log_start_offset or offset > end:
            raise OffsetOutOfRangeError(
                f"offset {offset} is outside [{self.log_start_offset}, {end}] of "
                f"{self.topic}-{self.index}"
            )
        if upper is not None and upper < end:
            return self._read_below(offset, max_bytes, upper)
        segments = self.segments  # one snapshot: the cleaner's swap replaces it in another thread
        i = bisect.bisect_right(segments, offset, key=_BASE_OFFSET) - 1
        while i < len(segments):
            segment = segments[i]
            hint_offset, hint_segment, hint_pos = self._read_hint
            hint = (hint_offset, hint_pos) if hint_segment is segment else None
            try:
                position = segment.find_position(max(offset, segment.base_offset), hint)
            except CorruptRecordError:
                self._repair(segment)
                segments = self.segments
                continue
            if position is not None:
                stop, next_offset = segment.slice_end(position, max_bytes, segment.size)
                self._read_hint = (next_offset, segment, stop)
                return segment.slice(position, stop, next_offset)
            i += 1
        return None

    def _read_below(self, offset: int, max_bytes: int, upper: int) -> FileSlice | None:
        """`read` up to `upper`, an offset below the high watermark where a batch starts (the
        first of an ongoing transaction)."""
        if offset >= upper:
            return None
        found = self.read(offset, max_bytes)
        if found is None or found.next_offset <= upper:
            return found
        # The slice runs past `upper`, so the batch starting there is in the slice's segment.
        segments = self.segments
        segment = segments[bisect.bisect_right(segments, upper, key=_BASE_OFFSET) - 1]
        stop = segment.find_position(upper)
        if stop is None or stop <= found.position:
            return None
        self._read_hint = (upper, segment, stop)
        return segment.slice(found.position, stop, upper)

    def read_batches(self, offset: int, max_bytes: int) -> bytes:
        """`read` as bytes, for in-process consumers."""
        found = self.read(offset, max_bytes)
        return b"" if found is None else found.read()

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record whose timestamp is >= `timestamp`."""
        for segment in self.segments:
            found = segment.timestamp_lookup(timestamp)
            if found is None:
                continue
            position, header = found
            batch = decode_batch(os.pread(segment.fd, header.size, position))
            for record in batch.records:
                ts = record.timestamp if record.timestamp is not None else -1
                if ts >= timestamp and record.offset >= self.log_start_offset:
                    return record.offset, ts
        return None

    # --- retention and deletion ---------------------------------------------------------------

    def delete_records(self, before_offset: int) -> int:
        """Move the log start offset up (DeleteRecords); whole segments below it are removed."""
        with self._writing():
            if before_offset < 0 or before_offset > self.log_end_offset:
                raise OffsetOutOfRangeError(
                    f"cannot delete records before {before_offset}: the log ends at "
                    f"{self.log_end_offset}"
                )
            old_start = self.log_start_offset
            self.log_start_offset = max(old_start, before_offset)
            self._drop_segments(lambda s, nxt: nxt <= self.log_start_offset)  # frees space first
            try:
                self._checkpoint()
            except KafkaStorageError:
                # Back to what a restart would find: the whole segments deleted are gone, the
                # rest of the move was not saved.
                self.log_start_offset = max(old_start, self.segments[0].base_offset)
                raise
            return self.log_start_offset

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Delete whole closed segments past retention.ms or over retention.bytes where
        cleanup.policy includes delete (also done on every segment roll; a broker calls this
        periodically for logs that stopped growing), and forget producers idle for
        producer.id.expiration.ms."""
        with self._writing():
            self._expire_producers()
            removed = self._retain(now_ms)
            if removed:
                self._save_work(self._checkpoint)
            return removed

    def _retain(self, now_ms: int | None = None) -> int:
        config = self.config
        if not config.deletes:
            return 0  # compact only: old segments hold the latest value of their keys
        now = int(self._clock() * 1000) if now_ms is None else now_ms
        excess = self.size - config.retention_bytes if config.retention_bytes >= 0 else 0

        def expired(segment: LogSegment, _next: int) -> bool:
            nonlocal excess
            if excess > 0 and excess - segment.size >= 0:
                excess -= segment.size
                return True
            return (config.retention_ms >= 0 and 0 <= segment.max_timestamp
                    < now - config.retention_ms)

        removed = self._drop_segments(expired)
        if removed:
            self.log_start_offset = max(self.log_start_offset, self.segments[0].base_offset)
        return removed

    def _drop_segments(self, doomed: Callable[[LogSegment, int], bool]) -> int:
        """Delete closed segments from the front while `doomed(segment, next base)` holds."""
        count = 0
        while len(self.segments) > 1 and doomed(self.segments[0], self.segments[1].base_offset):
            self.segments[0].delete()
            self.segments = self.segments[1:]
            count += 1
        return count

    # --- compaction: swapping cleaned segments in ---------------------------------------------

    def replace_segments(self, old: list[LogSegment], cleaned: Path) -> bool:
        """Swap in `cleaned`, a synced file of what cleaning kept of `old` (consecutive closed
        segments), for them; False, with `cleaned` removed, if the log changed meanwhile (one of
        them deleted or replaced, the partition closed).

        Crash-safe, as Kafka's `.cleaned` -> `.swap` -> rename, with one rename as the commit.
        Under the lock: (1) `cleaned` becomes `<base>.log.swap` (a swap in progress: `.cleaned`
        files are also what another process may be writing); (2) the old segments' aborted-
        transaction entries, all of them, go to `<base>.txnindex.swap`; (3) the old offset and
        time indexes go (they are rebuilt from the log), the old files after the first segment's
        are renamed `.deleted`; (4) the commit: `.log.swap` replaces the first segment's file;
        (5) `.txnindex.swap` takes its place and the `.deleted` files go. A crash before (4)
        leaves a `.log.swap` file, and opening undoes the swap; after it, opening finishes (5)
        (`_finish_swap`). (Kafka's recovery deletes the old segments within a `.swap` file's
        offsets instead, which misses those whose records cleaning all removed.) Readers in
        flight keep the old files open (a FileSlice holds its file object), so they read the old
        bytes, whole, to their end."""
        with self._writing():
            i = next((n for n, s in enumerate(self.segments) if s is old[0]), -1)
            if (self._closed or i < 0 or i + len(old) >= len(self.segments)
                    or any(a is not b for a, b in zip(self.segments[i:], old, strict=False))
                    or not all(map(same_file, old)) or not cleaned.exists()):
                cleaned.unlink(missing_ok=True)
                return False
            try:
                os.replace(cleaned, suffixed(old[0].log_path, SWAP))
                self._merge_txn_indexes(old)
                for segment in old:
                    segment.offset_index.path.unlink(missing_ok=True)
                    segment.time_index.path.unlink(missing_ok=True)
                for segment in old[1:]:
                    for path in (segment.log_path, segment.txn_index.path):
                        if path.exists():
                            os.replace(path, suffixed(path, DELETED))
                sync_directory(self.dir)
                os.replace(suffixed(old[0].log_path, SWAP), old[0].log_path)
            except (OSError, KafkaStorageError) as exc:
                self._finish_swap()
                if isinstance(exc, KafkaStorageError):
                    raise
                raise storage_error(exc, f"swapping in cleaned segment {cleaned}") from exc
            self._swapped(i, old)
        return True

    def _merge_txn_indexes(self, old: list[LogSegment]) -> None:
        """The aborted-transaction entries of all the old segments (the cleaner keeps every
        marker), as `<first base>.txnindex.swap`, synced."""
        if not any(s.txn_index.entries for s in old[1:]):
            return  # the first segment's own index is the whole of it
        merged = TransactionIndex(suffixed(old[0].txn_index.path, SWAP))
        try:
            for segment in old:
                for entry in segment.txn_index.entries:
                    merged.append(entry)
            merged.flush()
        finally:
            merged.close()

    def _swapped(self, i: int, old: list[LogSegment]) -> None:
        """After the commit of a swap: the old files go and the new segment takes their place."""
        for segment in old:
            segment.close()
        try:
            self._finish_swap()
        except OSError as exc:  # the next open finishes it
            log.error("%s-%d: finishing a segment swap failed: %s", self.topic, self.index, exc)
        fresh = self._new_segment(old[0].base_offset)
        fresh.rebuild_indexes()
        self.segments = [*self.segments[:i], fresh, *self.segments[i + len(old):]]
        self._read_hint = (-1, None, 0)
        if self._recovery_point[0] in {s.base_offset for s in old}:
            self._recovery_point = (fresh.base_offset, fresh.size)  # all of it is synced
        self._save_work(self._checkpoint)

    def _finish_swap(self) -> None:
        """Undo a swap a crash cut short before its commit (a `.log.swap` file is left: the
        `.deleted` files are put back), or finish one committed (the `.txnindex.swap` file goes
        in place, the `.deleted` files go); see `replace_segments`. `.cleaned` files, a pass's
        work not yet swapped in, go."""
        names = sorted(os.listdir(self.dir))
        undo = any(name.endswith(".log" + SWAP) for name in names)
        changed = False
        for name in names:
            path = self.dir / name
            if name.endswith(DELETED) and undo:
                os.replace(path, path.with_name(name[:-len(DELETED)]))
            elif name.endswith(SWAP) and not undo:
                os.replace(path, path.with_name(name[:-len(SWAP)]))
            elif name.endswith((DELETED, SWAP, CLEANED)):
                path.unlink()
            else:
                continue
            changed = True
        if changed:
            sync_directory(self.dir)

    # --- durability ---------------------------------------------------------------------------

    def flush(self) -> None:
        """fdatasync what is appended; callers that arrive during a flush share the next one."""
        target = self.log_end_offset
        with self._flush_lock:
            if self._flushed_offset >= target:
                return
            with self._mutex:
                end = self.log_end_offset
                active = self._active
                point = (active.base_offset, active.size)
                dirty = [s for s in self.segments if s.next_offset > self._flushed_offset]
            for segment in dirty:
                segment.flush()
            with self._writing():
                self._flushed_offset = end
                self._recovery_point = max(self._recovery_point, point)

    def close(self, save: bool = True) -> None:
        """Idempotent: a second close must not touch an fd number the OS may have reused.
        `save=False` (the partition is being deleted) skips saving recovery work: two fsyncs
        each, seconds for a topic of thousands of partitions."""
        if self._closed:
            return
        with self._writing():
            self.write_held()
            if save:
                self._expire_producers()
                self._save_work(lambda: self.producers.write_snapshot(self.log_end_offset))
                self._save_work(self._checkpoint)
            for segment in self.segments:
                segment.close()
            self._closed = True

    def delete(self) -> None:
        for segment in self.segments:
            segment.delete()
        for name in (CHECKPOINT, "producer.snapshot"):
            (self.dir / name).unlink(missing_ok=True)
        with suppress(OSError):
            self.dir.rmdir()


def same_file(segment: LogSegment) -> bool:
    """Whether the segment's file is still the one at its path (not replaced or deleted since)."""
    try:
        return os.stat(segment.log_path).st_ino == os.fstat(segment.fd).st_ino
    except FileNotFoundError:
        return False


def suffixed(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _recompressed(buf: bytearray, header: BatchHeader, compression_type: str
                  ) -> tuple[bytearray, BatchHeader]:
    """The batch in the topic's compression.type codec (Kafka's LogValidator recompresses a
    batch whose codec is not the topic's); the same batch when it already is."""
    target = Compression.NONE if compression_type == "uncompressed" else Compression.parse(
        compression_type)
    if header.compression == target:
        return buf, header
    records = decode_records(header, bytes(memoryview(buf)[HEADER_SIZE:]))
    new = bytearray(encode_batch(records, compression=target, producer_id=header.producer_id,
                                 producer_epoch=header.producer_epoch,
                                 base_sequence=header.base_sequence))
    return new, read_header(new)
