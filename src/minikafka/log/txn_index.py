"""The aborted-transaction index of one segment (Kafka's `.txnindex`, TransactionIndex.java).

One 34-byte entry per ABORT marker in the segment, in marker order: version int16 (0), producer
id int64, first offset int64 (the transaction's first batch, maybe in an older segment), last
offset int64 (the marker's) and last stable offset int64 (the LSO once the marker was written).
A read_committed fetch gets from it the aborted transactions overlapping what it returns.

Unlike the sparse indexes it is not a hint: an entry lost means aborted records served as
committed. So it is written before its marker (and cut back if the marker's write fails) and
flushed with its segment; recovery keeps the entries whose markers it finds in the log, and the
producer-state replay that follows adds those missing (never flushed). The file exists only once
a segment has an abort: most segments never get one.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import NamedTuple

from .durable import storage_error, sync_directory, write_fully

_ENTRY = struct.Struct(">hqqqq")
ENTRY_SIZE = _ENTRY.size  # 34
VERSION = 0


class AbortedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


class TransactionIndex:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[AbortedTxn] = []
        self._fd = -1  # opened on the first entry written or found
        self._dirty = False  # entries written since the last flush
        self._created = False  # the file's name too: its directory needs a flush

    def _open(self, create: bool) -> bool:
        if self._fd < 0:
            try:
                self._fd = os.open(self.path, os.O_RDWR, 0o644)
            except FileNotFoundError:
                if not create:
                    return False
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                self._created = True
        return True

    def load(self, limit: int) -> None:
        """Read the file afresh, up to the entries whose marker is below `limit` (the log end
        as this process knows it: others are not published yet, or are left by a writer that
        died; recovery sorts them out with `retain`)."""
        self.entries.clear()
        self.refresh(limit)

    def refresh(self, limit: int) -> None:
        """Take in entries another process appended, whose markers are below `limit`."""
        if not self._open(create=False):
            return
        have = len(self.entries) * ENTRY_SIZE
        size = os.fstat(self._fd).st_size
        if size < have:
            self.entries.clear()
            have = 0
        data = os.pread(self._fd, size - have - (size - have) % ENTRY_SIZE, have)
        for version, *fields in _ENTRY.iter_unpack(data):
            entry = AbortedTxn(*fields)
            if version != VERSION or entry.last_offset >= limit or (
                    self.entries and entry.last_offset <= self.entries[-1].last_offset):
                break
            self.entries.append(entry)

    def append(self, entry: AbortedTxn) -> None:
        """Write one entry; raises KafkaStorageError (the file cut back) if the disk refuses."""
        position = len(self.entries) * ENTRY_SIZE
        try:
            self._open(create=True)
            write_fully(self._fd, _ENTRY.pack(VERSION, *entry), position)
        except OSError as exc:
            if self._fd >= 0:
                with suppress(OSError):  # else the next append still writes at `position`
                    os.ftruncate(self._fd, position)
            raise storage_error(exc, f"writing {self.path}") from exc
        self.entries.append(entry)
        self._dirty = True

    def has(self, last_offset: int) -> bool:
        """Whether the entry of the marker at `last_offset`, or of a later one, is here."""
        return bool(self.entries) and self.entries[-1].last_offset >= last_offset

    def cut_back(self, entry: AbortedTxn) -> None:
        """Undo the `append` of `entry`, the last one, whose marker could not be written. Should
        the truncation fail too, the next append still writes at its place."""
        if self.entries[-1:] == [entry]:
            self.entries.pop()
            with suppress(OSError):
                os.ftruncate(self._fd, len(self.entries) * ENTRY_SIZE)

    def retain(self, keep: Callable[[AbortedTxn], bool]) -> None:
        """Keep only the entries `keep` accepts (recovery: those whose markers are in the log)
        and make the file hold exactly them."""
        kept = [e for e in self.entries if keep(e)]
        if self._fd >= 0:
            if kept != self.entries:
                write_fully(self._fd, b"".join(_ENTRY.pack(VERSION, *e) for e in kept), 0)
            os.ftruncate(self._fd, len(kept) * ENTRY_SIZE)
        self.entries = kept

    def flush(self) -> None:
        if self._dirty:
            os.fdatasync(self._fd)
            if self._created:
                sync_directory(self.path.parent)
                self._created = False
            self._dirty = False

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

