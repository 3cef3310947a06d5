"""The Fetch response, written by hand around record slices (Fetch v4-v12).

Record bytes are the hot path: they go from the log file to the socket with sendfile and never
become Python bytes. So the response is a list of pieces: `bytes` for everything we write, and
the caller's slice objects (anything with a `.length`) for the records, with their length
prefixes written here. The schema classes are used only by the tests, to check the bytes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .codec import RequestHeader, response_header
from .primitives import EMPTY_TAGS, INT16, INT32, INT64, array_length, bytes_length, string

MIN_VERSION = 4
MAX_VERSION = 17  # v13 names topics by id; v14-17 change only the request and tagged fields
TOPIC_IDS_FROM = 13
FLEXIBLE_FROM = 12
_ZERO_ID = uuid.UUID(int=0)


class RecordsSlice(Protocol):
    """A run of whole record batches that the I/O layer knows how to send (e.g. a FileSlice)."""

    @property
    def length(self) -> int: ...


Records = bytes | RecordsSlice


@dataclass(slots=True)
class PartitionData:
    index: int
    error_code: int = 0
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    aborted_transactions: list[tuple[int, int]] | None = None  # (producer id, first offset)
    records: Records | None = None


@dataclass(slots=True)
class TopicData:
    name: str
    partitions: list[PartitionData]
    topic_id: uuid.UUID | None = None  # what v13+ answers with instead of the name


def records_length(records: Records) -> int:
    return len(records) if isinstance(records, bytes | bytearray | memoryview) else records.length


class _Writer:
    """Accumulates bytes and slices in order, merging adjacent bytes."""

    def __init__(self) -> None:
        self.pieces: list[bytes | RecordsSlice] = []
        self._buf = bytearray()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._buf += data

    def slice(self, piece: RecordsSlice) -> None:
        self.size += len(self._buf) + piece.length
        self.pieces.append(bytes(self._buf))
        self.pieces.append(piece)
        self._buf = bytearray()

    def finish(self) -> list[bytes | RecordsSlice]:
        """The pieces, the first one prefixed with the frame's size."""
        self.size += len(self._buf)
        if self._buf:
            self.pieces.append(bytes(self._buf))
        head = self.pieces[0]
        assert isinstance(head, bytes)  # the response header is written before any slice
        self.pieces[0] = INT32.pack(self.size) + head
        return self.pieces


def encode_fetch_response(
    header: RequestHeader,
    topics: Sequence[TopicData],
    *,
    error_code: int = 0,
    session_id: int = 0,
    throttle_time_ms: int = 0,
) -> list[bytes | RecordsSlice]:
    """Frame a Fetch response; the first piece starts with the frame's size prefix."""
    version = header.api_version
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise ValueError(f"Fetch v{version} is not encoded here")
    flexible = version >= FLEXIBLE_FROM
    out = _Writer()
    out.write(response_header(header))
    out.write(INT32.pack(throttle_time_ms))
    if version >= 7:
        out.write(INT16.pack(error_code) + INT32.pack(session_id))
    out.write(array_length(len(topics), flexible))
    for topic in topics:
        if version >= TOPIC_IDS_FROM:
            out.write((topic.topic_id or _ZERO_ID).bytes)
        else:
            out.write(string(topic.name, flexible))
        out.write(array_length(len(topic.partitions), flexible))
        for p in topic.partitions:
            out.write(INT32.pack(p.index) + INT16.pack(p.error_code) + INT64.pack(p.high_watermark)
                      + INT64.pack(p.last_stable_offset))
            if version >= 5:
                out.write(INT64.pack(p.log_start_offset))
            aborted = p.aborted_transactions
            out.write(array_length(None if aborted is None else len(aborted), flexible))
            for producer_id, first_offset in aborted or ():
                out.write(INT64.pack(producer_id) + INT64.pack(first_offset))
                if flexible:
                    out.write(EMPTY_TAGS)
            if version >= 11:
                out.write(INT32.pack(-1))  # preferred read replica: none, read from the leader
            records = p.records
            if records is None:
                out.write(bytes_length(None, flexible))
            else:
                out.write(bytes_length(records_length(records), flexible))
                if isinstance(records, bytes | bytearray | memoryview):
                    out.write(records)
                else:
                    out.slice(records)
            if flexible:
                out.write(EMPTY_TAGS)
        if flexible:
            out.write(EMPTY_TAGS)
    if flexible:
        out.write(EMPTY_TAGS)
    return out.finish()
