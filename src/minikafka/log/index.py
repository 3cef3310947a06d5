"""Sparse segment indexes in Kafka's file formats.

`.index` maps offsets to file positions (int32 relative offset, int32 position) and `.timeindex`
maps timestamps to offsets (int64 timestamp, int32 relative offset), one entry per
`index.interval.bytes` of log. Both are append-only and only ever hints: a missing tail entry makes
a lookup scan a little further, and a damaged file is rebuilt from the log.
"""

from __future__ import annotations

import bisect
import os
import struct
from pathlib import Path

from .durable import write_fully


class SparseIndex:
    """An append-only file of fixed-size (key, relative offset or position) entries."""

    ENTRY: struct.Struct

    def __init__(self, path: Path, base_offset: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.keys: list[int] = []
        self.values: list[int] = []
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self._file_bytes = 0

    def _decode(self, key: int, value: int) -> tuple[int, int]:
        raise NotImplementedError

    def _encode(self, key: int, value: int) -> bytes:
        raise NotImplementedError

    def _within(self, key: int, value: int, limit: int) -> bool:
        raise NotImplementedError

    def load(self, limit: int) -> bool:
        """Read the file afresh; False if it holds an out-of-order entry (the caller rebuilds)."""
        self.keys.clear()
        self.values.clear()
        self._file_bytes = 0
        return self.refresh(limit)

    def refresh(self, limit: int) -> bool:
        """Take in entries appended since the last read, by this or another process, stopping at
        the first one that points at or past `limit` (not yet published, or left by a writer that
        died: recovery will cut it). False if an entry is out of order, i.e. the file is damaged."""
        size = os.fstat(self._fd).st_size
        if size < self._file_bytes:
            return self.load(limit)
        whole = size - (size - self._file_bytes) % self.ENTRY.size
        if whole == self._file_bytes:
            return True
        data = os.pread(self._fd, whole - self._file_bytes, self._file_bytes)
        for raw_key, raw_value in self.ENTRY.iter_unpack(data):
            key, value = self._decode(raw_key, raw_value)
            if self.keys and (key <= self.keys[-1] or value <= self.values[-1]):
                return False
            if not self._within(key, value, limit):
                return True
            self.keys.append(key)
            self.values.append(value)
            self._file_bytes += self.ENTRY.size
        return True

    def append(self, key: int, value: int) -> None:
        """Write the entry, then take it in: a failed write (raised) leaves the index as it was,
        but for bytes past its end that `truncate_entries` cuts."""
        entry = self._encode(key, value)
        write_fully(self._fd, entry, self._file_bytes)
        self._file_bytes += len(entry)
        self.keys.append(key)
        self.values.append(value)

    def truncate_entries(self, count: int) -> None:
        """Drop entries from `count` on, in memory and on disk (only under the writer's lock)."""
        del self.keys[count:]
        del self.values[count:]
        self._file_bytes = count * self.ENTRY.size
        os.ftruncate(self._fd, self._file_bytes)

    def floor(self, key: int) -> int:
        """Index of the last entry whose key is <= key, or -1."""
        return bisect.bisect_right(self.keys, key) - 1

    def flush(self) -> None:
        os.fdatasync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


class OffsetIndex(SparseIndex):
    """offset -> file position of the batch whose base offset it is."""

    ENTRY = struct.Struct(">ii")

    def _decode(self, key: int, value: int) -> tuple[int, int]:
        return key + self.base_offset, value

    def _encode(self, key: int, value: int) -> bytes:
        return self.ENTRY.pack(key - self.base_offset, value)

    def _within(self, key: int, value: int, limit: int) -> bool:
        return key >= self.base_offset and 0 <= value < limit

    def lookup(self, offset: int) -> tuple[int, int]:
        """(offset, position) of the nearest indexed batch at or before `offset`."""
        i = self.floor(offset)
        return (self.base_offset, 0) if i < 0 else (self.keys[i], self.values[i])

    def floor_position(self, position: int) -> int:
        """The largest indexed batch position <= position (0 if none)."""
        i = bisect.bisect_right(self.values, position) - 1
        return self.values[i] if i >= 0 else 0


class TimeIndex(SparseIndex):
    """max timestamp so far -> base offset of the batch that reached it."""

    ENTRY = struct.Struct(">qi")

    def _decode(self, key: int, value: int) -> tuple[int, int]:
        return key, value + self.base_offset

    def _encode(self, key: int, value: int) -> bytes:
        return self.ENTRY.pack(key, value - self.base_offset)

    def _within(self, key: int, value: int, limit: int) -> bool:
        return self.base_offset <= value < limit

    def start_offset_for(self, timestamp: int) -> int:
        """An offset at or before the first batch whose max timestamp is >= timestamp."""
        i = bisect.bisect_left(self.keys, timestamp) - 1
        return self.base_offset if i < 0 else self.values[i]
