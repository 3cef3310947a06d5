"""An append-only file of CRC-framed JSON records, replayed on open and compacted by atomic
replace once it is mostly superseded entries: the storage of the committed-offsets store
(`offsets.py`) and of the transaction coordinator's log (`txn/log.py`).

Every frame is `{"g": key, "o": value}` behind its length and CRC-32C. Several processes may
append at once (under `flock`); a torn frame left by a killed process fails its CRC and is cut by
the next writer. A damaged frame with whole frames after it (a bad disk, not a crash) is skipped,
loudly, and the later ones kept. A subclass says what a frame means (`_apply`) and which frames
hold its live state (`_live_frames`, written by compaction).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import struct
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from crc32c import crc32c

from ..errors import KafkaStorageError
from .durable import storage_error, write_atomically, write_fully

_FRAME = struct.Struct(">II")  # payload length, CRC-32C of the payload
_PAYLOAD_START = b'{"g":'  # how `frame` starts every payload
log = logging.getLogger(__name__)


def frame(key: str, value: Any) -> bytes:
    """One record as stored: length, CRC-32C, JSON payload."""
    payload = json.dumps({"g": key, "o": value}, separators=(",", ":")).encode()
    return _FRAME.pack(len(payload), crc32c(payload)) + payload


def _parse(data: bytes, pos: int) -> tuple[dict[str, Any], int] | None:
    """The record framed at `pos` and the position after it; None if the frame is torn or
    damaged."""
    length, crc = _FRAME.unpack_from(data, pos)
    end = pos + _FRAME.size + length
    payload = data[pos + _FRAME.size : end]
    if len(payload) < length or crc32c(payload) != crc:
        return None
    try:
        record = json.loads(payload)
    except ValueError:
        return None
    return (record, end) if isinstance(record, dict) and "g" in record else None


def _resync(data: bytes, pos: int) -> int | None:
    """Where the first whole frame at or after `pos` starts, past damage; only positions whose
    payload starts as every record's does are tried."""
    at = data.find(_PAYLOAD_START, pos + _FRAME.size)
    while at >= 0:
        if _parse(data, at - _FRAME.size) is not None:
            return at - _FRAME.size
        at = data.find(_PAYLOAD_START, at + 1)
    return None


class FramedLog:
    """`fsync=True` syncs each append before it returns; a broker instead shares one fsync among
    concurrent appends by calling `flush`. What the records say is the subclass's: `_reset`,
    `_apply` (returns how many entries the record adds), `_live_entries`, `_live_frames`."""

    def __init__(self, path: Path, *, fsync: bool = False, compact_min_entries: int = 10_000
                 ) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._compact_min = compact_min_entries
        self._mutex = threading.RLock()
        self._fd = -1
        self._inode = -1
        self._position = 0  # end of the last whole frame replayed
        self._entries = 0  # entries in the file, superseded ones included
        self._open()

    # --- what the records mean (the subclass's) ---------------------------------------------------

    def _reset(self) -> None:
        raise NotImplementedError

    def _apply(self, key: str, value: Any) -> int:
        raise NotImplementedError

    def _live_entries(self) -> int:
        raise NotImplementedError

    def _live_frames(self) -> Iterable[bytes]:
        raise NotImplementedError

    # --- the file ---------------------------------------------------------------------------------

    def _open(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        self._inode = os.fstat(self._fd).st_ino
        self._reset()
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
            parsed = _parse(data, pos)
            if parsed is None:
                resumed = _resync(data, pos + 1)
                if resumed is None:
                    break  # torn or being written: stop here
                log.warning("%s: %d damaged bytes at position %d skipped (the record they held "
                            "is lost, the later ones kept)", self.path, resumed - pos,
                            self._position + pos)
                pos = resumed
                continue
            record, pos = parsed
            self._entries += self._apply(record["g"], record["o"])
        self._position += pos

    def _append(self, key: str, value: Any) -> None:
        """Store one record, or none: a failed write is cut back and raises
        KafkaStorageError."""
        with self._locked():
            self._refresh()
            data = frame(key, value)
            try:
                if os.fstat(self._fd).st_size > self._position:
                    os.ftruncate(self._fd, self._position)  # a torn frame from a killed writer
                write_fully(self._fd, data, self._position)
                if self._fsync:
                    os.fdatasync(self._fd)
            except OSError as exc:
                with suppress(OSError):
                    os.ftruncate(self._fd, self._position)
                raise storage_error(exc, f"writing to {self.path}") from exc
            self._position += len(data)
            self._entries += self._apply(key, value)
            if self._entries > self._compact_min and self._entries > 4 * self._live_entries():
                with suppress(KafkaStorageError):  # the record is stored; compact another time
                    self._compact()

    def _compact(self) -> None:
        write_atomically(self.path, b"".join(self._live_frames()))
        self._open()
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # released by the caller's _locked()
        self._refresh()

    def flush(self) -> None:
        """fdatasync the records so far (for callers that group-commit instead of `fsync=True`).

        Syncs a duplicate descriptor outside the lock, so appends go on meanwhile and a
        compaction (which syncs its own file) cannot close it underneath."""
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
