"""One log segment: `<base offset>.log` of RecordBatch v2 bytes plus its sparse indexes."""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from ..errors import CorruptRecordError
from ..records import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    MAGIC_AT,
    BatchHeader,
    read_header,
    validate_batch,
)
from .durable import storage_error, sync_directory, write_fully
from .index import OffsetIndex, TimeIndex
from .txn_index import TransactionIndex

SCAN_CHUNK = 64 * 1024
DAMAGED = ".damaged"  # suffix of a segment file's original, set aside when damage was cut out of it
CLEANED = ".cleaned"  # a cleaned segment file being written, not yet swapped in (compaction)
SWAP = ".swap"  # a cleaned segment being swapped in, and its aborted-transaction index
DELETED = ".deleted"  # a segment file a swap replaces, removed once the swap is done


class Damage(NamedTuple):
    """Bytes of a segment file that hold no valid batch of ours, found by `recover`."""

    position: int
    size: int
    first_offset: int  # the offset the next batch should have had there
    resumed_at: int  # base offset of the valid batch after it; -1: none (it runs to the end)


def segment_name(base_offset: int, suffix: str) -> str:
    return f"{base_offset:020d}{suffix}"


@dataclass(frozen=True, slots=True)
class FileSlice:
    """A byte range of a segment file: what a fetch hands to `socket.sendfile` untouched.

    It holds the file object itself, so a segment deleted by retention meanwhile stays readable
    until the slice is dropped.
    """

    file: BinaryIO
    position: int
    length: int
    next_offset: int  # the offset after its last batch: records served = this - fetch offset

    def read(self) -> bytes:
        return os.pread(self.file.fileno(), self.length, self.position)


class LogSegment:
    """Appends whole batches at the end of its file and finds them again by offset or time."""

    def __init__(self, directory: Path, base_offset: int, index_interval_bytes: int = 4096
                 ) -> None:
        self.base_offset = base_offset
        self.log_path = directory / segment_name(base_offset, ".log")
        self.next_offset = base_offset
        self.max_timestamp = -1
        self.first_timestamp = -1
        self.index_interval_bytes = index_interval_bytes
        self._indexed_bytes = 0  # file position of the last index entry
        with ExitStack() as opened:  # if a file cannot be opened, those opened before close
            # Read-write, never O_APPEND: there Linux ignores pwrite's offset, so after one
            # short write every later batch would land behind the partial bytes, not over them.
            self.file: BinaryIO = open(  # noqa: SIM115 (closed by the last FileSlice using it)
                os.open(self.log_path, os.O_RDWR | os.O_CREAT, 0o644), "r+b", buffering=0)
            opened.callback(self.file.close)
            self.offset_index = OffsetIndex(directory / segment_name(base_offset, ".index"),
                                            base_offset)
            opened.callback(self.offset_index.close)
            self.time_index = TimeIndex(directory / segment_name(base_offset, ".timeindex"),
                                        base_offset)
            opened.pop_all()
        self.txn_index = TransactionIndex(directory / segment_name(base_offset, ".txnindex"))
        self.recovered_from = -1  # where `recover` began validating: abort entries after it may
        # be missing (never flushed), for the replay on open to add again
        self.fd = self.file.fileno()
        self.size = os.fstat(self.fd).st_size
        # Batches `hold` kept for `write_held` (bytes, header, position), and the size, next
        # offset and timestamps from before them
        self._held: list[tuple[bytearray, BatchHeader, int]] = []
        self._before_held = (0, 0, -1, -1)

    # --- appending ----------------------------------------------------------------------------

    def append(self, batch: bytes | bytearray, header: BatchHeader) -> int:
        """Write a batch whose offsets are already assigned, then its index entries; return its
        file position. All or nothing: if anything fails, the log and both indexes are cut back
        to where they ended; a failed write raises KafkaStorageError."""
        position = self.size
        self._write(batch, position, header, None)
        self.size = position + len(batch)
        return position

    def hold(self, batch: bytearray, header: BatchHeader) -> None:
        """Take in a batch whose offsets are assigned as `append` does, but keep its bytes (and
        index entries) for `write_held`, which writes every batch held at once."""
        if not self._held:
            self._before_held = (self.size, self.next_offset, self.first_timestamp,
                                 self.max_timestamp)
        self._held.append((batch, header, self.size))
        self._account(header)
        self.size += len(batch)

    def write_held(self) -> None:
        """Write the held batches in one write, then their index entries. All or nothing, as
        `append`: if anything fails, the segment is as it was before them, and a failed write
        raises KafkaStorageError."""
        held, self._held = self._held, []
        if not held:
            return
        self._write(b"".join([batch for batch, _, _ in held]), held[0][2], held[0][1], held)

    def _write(self, data: bytes | bytearray, position: int, first: BatchHeader,
               held: list[tuple[bytearray, BatchHeader, int]] | None) -> None:
        """Write `data` at `position`, then the index entries of its batches: `first` alone, or
        each of `held`. On any failure the log and both indexes are cut back to `position` (and
        what `hold` accounted for is undone); a failed write raises KafkaStorageError."""
        try:
            write_fully(self.fd, data, position)
            if held is None:
                self._track(first, position)
            else:  # `hold` accounted for them
                for _, header, at in held:
                    self._index(header, at)
        except BaseException as exc:
            self._cut_back(position, first.base_offset)
            if held is not None:
                self.size, self.next_offset, self.first_timestamp, self.max_timestamp = \
                    self._before_held
            if isinstance(exc, OSError):
                raise storage_error(exc, f"appending to {self.log_path}") from exc
            raise

    def _cut_back(self, position: int, base_offset: int) -> None:
        """Undo failed appends from the batch `base_offset` at `position` on: the entries they
        added are the ones that point at them (both indexes only grow). Should a truncation fail
        too, the next append still writes at `position`, and the indexes at their entry counts."""
        index, times = self.offset_index, self.time_index
        with suppress(OSError):
            os.ftruncate(self.fd, position)
        with suppress(OSError):
            index.truncate_entries(bisect_left(index.values, position))
        with suppress(OSError):
            times.truncate_entries(bisect_left(times.values, base_offset))
        self._indexed_bytes = index.values[-1] if index.values else 0

    def _track(self, header: BatchHeader, position: int) -> None:
        """Account for a batch this process wrote or validated, adding sparse index entries."""
        self._index(header, position)
        self._account(header)

    def _index(self, header: BatchHeader, position: int) -> None:
        """The sparse index entries of a batch at `position`, where one is due."""
        if position == 0 or position - self._indexed_bytes >= self.index_interval_bytes:
            if not self.offset_index.keys or header.base_offset > self.offset_index.keys[-1]:
                self.offset_index.append(header.base_offset, position)
                self._indexed_bytes = position
            if not self.time_index.keys or header.max_timestamp > self.time_index.keys[-1]:
                self.time_index.append(header.max_timestamp, header.base_offset)

    def _account(self, header: BatchHeader) -> None:
        self.next_offset = header.next_offset
        if self.first_timestamp < 0:
            self.first_timestamp = header.max_timestamp
        if header.max_timestamp > self.max_timestamp:
            self.max_timestamp = header.max_timestamp

    # --- opening, scanning and recovery -------------------------------------------------------

    def headers(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, BatchHeader]]:
        """(position, header) of each whole batch in [start, end), reading only the headers."""
        end = self.size if end is None else end
        pos = start
        while end - pos >= HEADER_SIZE:
            chunk = os.pread(self.fd, min(SCAN_CHUNK, end - pos), pos)
            at = 0
            while len(chunk) - at >= HEADER_SIZE:
                header = read_header(chunk, at)
                if (header.batch_length < HEADER_SIZE - LOG_OVERHEAD or header.magic != MAGIC
                        or pos + at + header.size > end):
                    return
                yield pos + at, header
                at += header.size
            if at == 0:
                return
            pos += at

    def load(self, size: int | None = None) -> bool:
        """Trust the bytes [0, size) (default: the whole file): load the indexes, rebuilding them
        if missing or damaged, and derive next offset and timestamps from the tail. False if the
        batches scanned do not chain up to `size` (a damaged length): `recover` the file then."""
        self.size = os.fstat(self.fd).st_size if size is None else size
        self.next_offset = self.base_offset
        self.max_timestamp = self.first_timestamp = -1
        index, times = self.offset_index, self.time_index
        if (not (index.load(self.size) and times.load(1 << 62))
                or (self.size and not (index.keys and times.keys))  # lost: the first batch has both
                or (index.keys and not self._points_at_batch(index.keys[-1], index.values[-1]))):
            return self.rebuild_indexes()
        from_pos = self._indexed_bytes = index.values[-1] if index.values else 0
        if times.keys:
            self.first_timestamp, self.max_timestamp = times.keys[0], times.keys[-1]
        end = from_pos
        for pos, header in self.headers(from_pos):
            self._account(header)
            end = pos + header.size
        if times.keys and times.values[-1] >= self.next_offset:
            times.load(self.next_offset)
            self.first_timestamp = times.keys[0] if times.keys else -1
        self.txn_index.load(self.next_offset)
        return end == self.size

    def _points_at_batch(self, offset: int, position: int) -> bool:
        """Whether an index entry is true: a batch with that base offset starts there. (An entry
        in order but wrong, e.g. left from before a truncation, would misplace every read.)"""
        raw = os.pread(self.fd, HEADER_SIZE, position)
        return len(raw) == HEADER_SIZE and read_header(raw).base_offset == offset

    def rebuild_indexes(self) -> bool:
        """Index the file afresh; False if its batches do not chain up to its end."""
        self.offset_index.truncate_entries(0)
        self.time_index.truncate_entries(0)
        self._indexed_bytes = 0
        self.next_offset = self.base_offset
        self.max_timestamp = self.first_timestamp = -1
        end = 0
        for pos, header in list(self.headers(0)):
            self._track(header, pos)
            end = pos + header.size
        self.txn_index.load(self.next_offset)
        return end == self.size

    def recover(self, start: int = 0, upper: int | None = None) -> list[Damage]:
        """Trust [0, start), validate every batch after it (CRC included) and index the valid
        ones; return the damaged spans between and after them, for the caller to cut.

        After damage, validation resumes at the next valid batch of ours: one that passes its
        CRC and whose offsets lie past the last valid batch's and below `upper` (the next
        segment's base offset, if any). A file shorter than `start` lost bytes that were
        trusted (cut behind our back, or restored from a copy), and one whose trusted batches do
        not chain up to `start` is damaged there: then nothing in it is trusted."""
        file_size = os.fstat(self.fd).st_size
        if start > file_size or not self.load(start):
            start = 0
            self.load(0)
        self.offset_index.truncate_entries(len(self.offset_index.keys))
        self.time_index.truncate_entries(len(self.time_index.keys))
        trusted = self.recovered_from = self.next_offset
        markers: set[int] = set()
        damage: list[Damage] = []
        pos = start
        while pos < file_size:
            header = self._valid_batch(pos, file_size, upper)
            if header is None:
                resumed = self._resync(pos + 1, file_size, upper)
                end, base = resumed if resumed else (file_size, -1)
                damage.append(Damage(pos, end - pos, self.next_offset, base))
                pos = end
                continue
            self._track(header, pos)
            if header.is_control:
                markers.add(header.base_offset)
            pos += header.size
        self.size = file_size
        # An abort's entry goes where its marker went; entries missing for the markers left
        # are added again by the replay of the producer state that follows on open.
        self.txn_index.load(1 << 62)
        self.txn_index.retain(lambda e: e.last_offset < trusted or e.last_offset in markers)
        return damage

    def _valid_batch(self, pos: int, end: int, upper: int | None) -> BatchHeader | None:
        """The header of the batch at `pos` if it is whole, passes its CRC and continues this
        segment's offsets (below `upper`); None otherwise."""
        raw = os.pread(self.fd, HEADER_SIZE, pos)
        if len(raw) < HEADER_SIZE:
            return None
        header = read_header(raw)
        if (header.magic != MAGIC or header.batch_length < HEADER_SIZE - LOG_OVERHEAD
                or pos + header.size > end or header.base_offset < self.next_offset
                or (upper is not None and header.next_offset > upper)):
            return None
        try:
            return validate_batch(os.pread(self.fd, header.size, pos))
        except CorruptRecordError:
            return None

    def _resync(self, pos: int, end: int, upper: int | None) -> tuple[int, int] | None:
        """(position, base offset) of the first valid batch at or after `pos`, trying only the
        positions whose magic byte says 2."""
        magic = bytes([MAGIC])
        while end - pos >= HEADER_SIZE:
            chunk = os.pread(self.fd, min(SCAN_CHUNK, end - pos), pos)
            stop = len(chunk) - HEADER_SIZE + MAGIC_AT + 1  # candidates whose header is here
            at = chunk.find(magic, MAGIC_AT, stop)
            while at >= 0:
                header = self._valid_batch(pos + at - MAGIC_AT, end, upper)
                if header is not None:
                    return pos + at - MAGIC_AT, header.base_offset
                at = chunk.find(magic, at + 1, stop)
            pos += stop - MAGIC_AT
        return None

    def set_aside(self, damage: list[Damage]) -> Path:
        """Cut the damaged spans out of the file, keeping its original beside it as
        `<name>.damaged` for an operator; return that path. The segment is closed: open it
        again (its file was replaced and its indexes emptied)."""
        aside = self.log_path.with_name(self.log_path.name + DAMAGED)
        n = 0
        while aside.exists():
            n += 1
            aside = self.log_path.with_name(f"{self.log_path.name}{DAMAGED}.{n}")
        os.link(self.log_path, aside)  # the original stays whole: its name gets a new file
        tmp = self.log_path.with_name(self.log_path.name + ".tmp")
        with open(tmp, "wb") as out:
            pos = 0
            for span in [*damage, Damage(os.fstat(self.fd).st_size, 0, -1, -1)]:
                while pos < span.position:
                    pos += out.write(os.pread(self.fd, min(SCAN_CHUNK, span.position - pos), pos))
                pos = span.position + span.size
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.log_path)
        sync_directory(self.log_path.parent)
        self.offset_index.truncate_entries(0)
        self.time_index.truncate_entries(0)
        self.close()
        return aside

    def refresh(self, size: int, next_offset: int) -> None:
        """Adopt batches another process appended and published (up to `size`)."""
        if size == self.size:
            return
        if size < self.size:
            self.load(size)
            return
        old = self.size
        self.size = size
        self.offset_index.refresh(size)
        self.time_index.refresh(next_offset)
        for _pos, header in self.headers(old):
            self._account(header)
        if self.offset_index.values:
            self._indexed_bytes = self.offset_index.values[-1]

    # --- reading ------------------------------------------------------------------------------

    def find_position(self, offset: int, hint: tuple[int, int] | None = None) -> int | None:
        """File position of the batch containing `offset` (or of the first batch after it, when
        it lies in a gap), or None if it is not in this segment. Raises CorruptRecordError where
        the batches stop chaining up before the segment's end (damage found on read)."""
        if offset >= self.next_offset or offset < self.base_offset:
            return None
        start = self.offset_index.lookup(offset)[1]
        if hint is not None and hint[0] <= offset and hint[1] > start:
            start = hint[1]
        end, found, last = start, -1, -1
        for pos, header in self.headers(start):
            if found >= 0:  # its length must lead to the next batch
                if header.base_offset > last:
                    return found
                break
            if header.last_offset >= offset:
                found, last = pos, header.last_offset
            end = pos + header.size
        if end < self.size:
            raise CorruptRecordError(f"{self.log_path}: no valid batch at position {end}")
        return found if found >= 0 else None

    def cut(self, position: int) -> None:
        """Truncate the file at `position`, the end of its last valid batch."""
        os.ftruncate(self.fd, position)
        self.size = position

    def slice_end(self, position: int, max_bytes: int, limit: int) -> tuple[int, int]:
        """(end position, next offset) of the whole batches from `position` that fit
        `max_bytes`, at least one (KIP-74)."""
        first = read_header(os.pread(self.fd, HEADER_SIZE, position))
        end, next_offset = position + first.size, first.next_offset
        target = min(position + max_bytes, limit)
        if end >= target:
            return end, next_offset
        # Jump to the last indexed batch that starts inside the budget, then walk the rest.
        indexed = self.offset_index.floor_position(target)
        if indexed > end:
            end = indexed
            next_offset = read_header(os.pread(self.fd, HEADER_SIZE, indexed)).base_offset
        for pos, header in self.headers(end, limit):
            if pos + header.size > target:
                break
            end, next_offset = pos + header.size, header.next_offset
        return end, next_offset

    def timestamp_lookup(self, timestamp: int) -> tuple[int, BatchHeader] | None:
        """(position, header) of the first batch whose max timestamp is >= timestamp."""
        if self.max_timestamp < timestamp:
            return None
        start_offset = self.time_index.start_offset_for(timestamp)
        start = self.offset_index.lookup(start_offset)[1]
        for pos, header in self.headers(start):
            if header.max_timestamp >= timestamp:
                return pos, header
        return None

    def slice(self, position: int, end: int, next_offset: int) -> FileSlice:
        return FileSlice(self.file, position, end - position, next_offset)

    # --- housekeeping -------------------------------------------------------------------------

    def flush(self) -> None:
        os.fdatasync(self.fd)
        self.txn_index.flush()

    def close(self) -> None:
        """Close the indexes; the log file closes when the last FileSlice using it is gone."""
        self.offset_index.close()
        self.time_index.close()
        self.txn_index.close()

    def delete(self) -> None:
        self.close()
        for path in (self.log_path, self.offset_index.path, self.time_index.path,
                     self.txn_index.path):
            path.unlink(missing_ok=True)
