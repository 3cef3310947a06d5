"""Committed consumer offsets: (group, topic, partition) -> (offset, leader epoch, metadata).

An append-only file of CRC-framed commits, replayed on open and compacted by atomic replace once
it is mostly superseded entries. Several processes may commit at once (appends under `flock`); a
torn frame left by a killed process fails its CRC and is cut by the next writer. A damaged frame
with whole frames after it (a bad disk, not a crash) is skipped, loudly, and the later ones kept.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import struct
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crc32c import crc32c

from ..errors import KafkaStorageError
from .durable import storage_error, write_atomically, write_fully

_FRAME = struct.Struct(">II")  # payload length, CRC-32C of the payload
_PAYLOAD_START = b'{"g":'  # how `_frame` starts every payload
log = logging.getLogger(__name__)
TopicPartition = tuple[str, int]


def _frame(group: str, rows: list[list[Any]]) -> bytes:
    """One commit as stored: length, CRC-32C, JSON payload."""
    payload = json.dumps({"g": group, "o": rows}, separators=(",", ":")).encode()
    return _FRAME.pack(len(payload), crc32c(payload)) + payload


def _parse(data: bytes, pos: int) -> tuple[dict[str, Any], int] | None:
    """The commit framed at `pos` and the position after it; None if the frame is torn or
    damaged."""
    length, crc = _FRAME.unpack_from(data, pos)
    end = pos + _FRAME.size + length
    payload = data[pos + _FRAME.size : end]
    if len(payload) < length or crc32c(payload) != crc:
        return None
    try:
        commit = json.loads(payload)
    except ValueError:
        return None
    return (commit, end) if isinstance(commit, dict) and "g" in commit else None


def _resync(data: bytes, pos: int) -> int | None:
    """Where the first whole frame at or after `pos` starts, past damage; only positions whose
    payload starts as every commit's does are tried."""
    at = data.find(_PAYLOAD_START, pos + _FRAME.size)
    while at >= 0:
        if _parse(data, at - _FRAME.size) is not None:
            return at - _FRAME.size
        at = data.find(_PAYLOAD_START, at + 1)
    return None


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp: int = 0


class OffsetStore:
    """`fsync=True` syncs each commit before it returns; a broker instead shares one fsync among
    concurrent commits by calling `flush`."""

    def __init__(self, path: Path, *, fsync: bool = False, compact_min_entries: int = 10_000
                 ) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._compact_min = compact_min_entries
        self._mutex = threading.RLock()
        self._offsets: dict[str, dict[TopicPartition, OffsetAndMetadata]] = {}
        self._fd = -1
        self._inode = -1
        self._position = 0  # end of the last whole frame replayed
        self._entries = 0  # entries in the file, superseded ones included
        self._open()

    def _open(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self._inode = os.fstat(self._fd).st_ino
        self._offsets = {}
        self._position = self._entries = 0

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._mutex:
            while True:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
                if os.stat(self.path).st_ino == self._inode:
                    break
                self._open()  # compacted while we waited: lock the new file instead
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _refresh(self) -> None:
        """Replay frames appended since the last look (by this or another process)."""
        try:
            if os.stat(self.path).st_ino != self._inode:
                self._open()  # compacted by someone else
        except FileNotFoundError:
            self._open()
        size = os.fstat(self._fd).st_size
        if size <= self._position:
            return
        data = os.pread(self._fd, size - self._position, self._position)
        pos = 0
        while len(data) - pos >= _FRAME.size:
            frame = _parse(data, pos)
            if frame is None:
                resumed = _resync(data, pos + 1)
                if resumed is None:
                    break  # torn or being written: stop here
                log.warning("offsets log %s: %d damaged bytes at position %d skipped (the commit "
                            "they held is lost, the later ones kept)", self.path, resumed - pos,
                            self._position + pos)
                pos = resumed
                continue
            commit, pos = frame
            self._apply(commit)
        self._position += pos

    def _apply(self, frame: dict[str, Any]) -> None:
        group = self._offsets.setdefault(frame["g"], {})
        for topic, partition, offset, epoch, metadata, ts in frame["o"]:
            self._entries += 1
            if offset < 0:
                group.pop((topic, partition), None)
            else:
                group[(topic, partition)] = OffsetAndMetadata(offset, epoch, metadata, ts)
        if not group:
            del self._offsets[frame["g"]]

    def _append(self, group: str, rows: list[list[Any]]) -> None:
        """Store one frame, or none: a failed write is cut back and raises KafkaStorageError."""
        with self._locked():
            self._refresh()
            frame = _frame(group, rows)
            try:
                if os.fstat(self._fd).st_size > self._position:
                    os.ftruncate(self._fd, self._position)  # a torn frame from a killed writer
                write_fully(self._fd, frame, self._position)
                if self._fsync:
                    os.fdatasync(self._fd)
            except OSError as exc:
                with suppress(OSError):
                    os.ftruncate(self._fd, self._position)
                raise storage_error(exc, f"committing offsets to {self.path}") from exc
            self._position += len(frame)
            self._apply({"g": group, "o": rows})
            if self._entries > self._compact_min and self._entries > 4 * self._live_entries():
                with suppress(KafkaStorageError):  # the commit is stored; compact another time
                    self._compact()

    def _live_entries(self) -> int:
        return sum(len(g) for g in self._offsets.values())

    def _compact(self) -> None:
        write_atomically(self.path, b"".join(
            _frame(group, [[t, p, o.offset, o.leader_epoch, o.metadata, o.commit_timestamp]
                           for (t, p), o in offsets.items()])
            for group, offsets in self._offsets.items()))
        self._open()
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # released by the caller's _locked()
        self._refresh()

    # --- public API -------------------------------------------------------------------------------

    def commit(self, group: str, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        """Store all of `offsets` at once: one frame, so a crash keeps all or none of them."""
        now = int(time.time() * 1000)
        rows = [[t, p, o.offset, o.leader_epoch, o.metadata or "", o.commit_timestamp or now]
                for (t, p), o in offsets.items()]
        if rows:
            self._append(group, rows)

    def fetch(self, group: str, partitions: Iterable[TopicPartition] | None = None
              ) -> dict[TopicPartition, OffsetAndMetadata]:
        with self._mutex:
            self._refresh()
            stored = self._offsets.get(group, {})
            if partitions is None:
                return dict(stored)
            return {tp: stored[tp] for tp in partitions if tp in stored}

    def groups(self) -> list[str]:
        with self._mutex:
            self._refresh()
            return sorted(self._offsets)

    def delete(self, group: str, partitions: Iterable[TopicPartition] | None = None) -> None:
        with self._mutex:
            targets = list(self.fetch(group, partitions))
        if targets:
            self._append(group, [[t, p, -1, -1, "", 0] for t, p in targets])

    def delete_topic(self, topic: str) -> None:
        for group in self.groups():
            self.delete(group, [tp for tp in self.fetch(group) if tp[0] == topic])

    def expire(self, older_than_ms: int, groups: Iterable[str] | None = None) -> int:
        """Drop commits older than the cutoff (offsets.retention.minutes), of `groups` or of
        every group; returns how many."""
        dropped = 0
        for group in self.groups() if groups is None else groups:
            old = [tp for tp, o in self.fetch(group).items() if o.commit_timestamp < older_than_ms]
            if old:
                self.delete(group, old)
                dropped += len(old)
        return dropped

    def flush(self) -> None:
        """fdatasync the commits so far (for callers that group-commit instead of `fsync=True`).

        Syncs a duplicate descriptor outside the lock, so commits go on meanwhile and a compaction
        (which syncs its own file) cannot close it underneath."""
        with self._mutex:
            if self._fd < 0:
                return
            fd = os.dup(self._fd)
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        with self._mutex:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
