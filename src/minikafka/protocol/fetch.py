"""Fetch by hand: the request read straight into the broker's per-partition objects, and the
response written around record slices (Fetch v4-v17).

Record bytes are the hot path: they go from the log file to the socket with sendfile and never
become Python bytes. So the response is a list of pieces: `bytes` for everything we write, and
the caller's slice objects (anything with a `.length`) for the records, with their length
prefixes written here. A consumer long-polls with the same fetch over and over, most of them
answered with nothing new, and one of many partitions costs the broker for each of them: so a
partition is read from the request with one unpack and written with one pack. The schema classes
are used only by the tests, to check the bytes.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Sequence
from typing import Final, Protocol

from .codec import RequestHeader, response_header
from .primitives import (
    EMPTY_TAGS,
    INT32,
    MalformedError,
    Reader,
    array_length,
    bytes_length,
    string,
)

MIN_VERSION = 4
MAX_VERSION = 17  # v13 names topics by id; v14-17 change only the request and tagged fields
TOPIC_IDS_FROM = 13
FLEXIBLE_FROM = 12
_ZERO_ID = uuid.UUID(int=0)


class FetchPartition:
    """One partition of a fetch: what the client asked, and (in a session, fetch_sessions.py)
    what it was last told. This and the other classes made per fetch are plain classes, not
    dataclasses: compiled, a dataclass still builds through interpreted code."""

    __slots__ = ("current_leader_epoch", "fetch_offset", "high_watermark", "log_start_offset",
                 "max_bytes", "partition", "topic", "topic_id")

    def __init__(self, topic: str | None, topic_id: uuid.UUID | None, partition: int,
                 fetch_offset: int, max_bytes: int, current_leader_epoch: int = -1,
                 high_watermark: int = -1, log_start_offset: int = -1) -> None:
        self.topic = topic  # None: a topic id we do not know (set by the handler from v13)
        self.topic_id = topic_id  # from v13
        self.partition = partition
        self.fetch_offset = fetch_offset
        self.max_bytes = max_bytes
        self.current_leader_epoch = current_leader_epoch
        self.high_watermark = high_watermark
        self.log_start_offset = log_start_offset

    def _fields(self) -> tuple[object, ...]:
        return (self.topic, self.topic_id, self.partition, self.fetch_offset, self.max_bytes,
                self.current_leader_epoch, self.high_watermark, self.log_start_offset)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FetchPartition) and self._fields() == other._fields()

    def __repr__(self) -> str:
        return f"FetchPartition{self._fields()!r}"

    @property
    def key(self) -> tuple[str | uuid.UUID | None, int]:
        """The partition in a session: its topic's id from v13, else its name."""
        return (self.topic_id or self.topic, self.partition)


class FetchRequest:
    """The fields of a Fetch request the broker serves (a consumer's: replica fields, the
    rack and the last fetched epoch are read past)."""

    __slots__ = ("forgotten", "isolation_level", "max_bytes", "max_wait_ms", "min_bytes",
                 "partitions", "session_epoch", "session_id", "shared")

    def __init__(self, max_wait_ms: int, min_bytes: int, max_bytes: int, isolation_level: int,
                 session_id: int, session_epoch: int, partitions: list[FetchPartition],
                 forgotten: list[tuple[str | uuid.UUID, int]]) -> None:
        self.max_wait_ms = max_wait_ms
        self.min_bytes = min_bytes
        self.max_bytes = max_bytes
        self.isolation_level = isolation_level
        self.session_id = session_id
        self.session_epoch = session_epoch
        self.partitions = partitions  # in request order, topic by topic
        self.forgotten = forgotten  # (topic name, or id from v13; partition)
        self.shared = False  # handed out for every fetch with the same body (decode_fetch_request)


def _layouts(version: int) -> tuple[struct.Struct, struct.Struct]:
    """A request version's fixed fields before its topics ([replica id,] max wait, min bytes,
    max bytes, isolation level[, session id, session epoch]) and a partition's (partition,
    [current leader epoch,] fetch offset, [last fetched epoch,] [log start offset,] max bytes)."""
    head = (">i" if version < 15 else ">") + "iiib" + ("ii" if version >= 7 else "")
    partition = "i" + ("i" if version >= 9 else "") + "q" + ("i" if version >= 12 else "") \
        + ("q" if version >= 5 else "") + "i"
    return struct.Struct(head), struct.Struct(">" + partition)


_LAYOUTS = {version: _layouts(version) for version in range(MIN_VERSION, MAX_VERSION + 1)}


def _topic(r: Reader, version: int, flexible: bool) -> tuple[str, uuid.UUID | None]:
    """A topic's name (to v12) or id (from v13)."""
    if version >= TOPIC_IDS_FROM:
        return "", r.read_uuid()
    return r.required_string(flexible), None


# Sessionless requests decoded lately, by version and body: a consumer that finds nothing new
# sends the same fetch again and again (librdkafka's are sessionless). Bounded: small bodies only,
# and emptied when full.
_REPEATED: dict[tuple[int, bytes], FetchRequest] = {}
REPEATED_MAX = 256
REPEATED_BODY_MAX = 4096  # a fetch of ~140 partitions


def decode_fetch_request(header: RequestHeader, frame: bytes | memoryview, pos: int
                         ) -> FetchRequest:
    """Fetch v4-v17; MalformedError on bytes that do not parse. A sessionless request (epoch
    -1) may be the object decoded for an earlier one with the same body: it is read, not
    changed (only a session keeps and updates its partitions; from v13 the handler writes in
    the names its topic ids resolve to, the same each time)."""
    version = header.api_version
    if len(frame) - pos > REPEATED_BODY_MAX or not _sessionless(version, frame, pos):
        return _decode(version, frame, pos)  # a session's epoch moves on: never repeated
    key = (version, bytes(frame[pos:]))
    request = _REPEATED.get(key)
    if request is None:
        request = _decode(version, frame, pos)
        if len(_REPEATED) >= REPEATED_MAX:
            _REPEATED.clear()
        _REPEATED[key] = request
        request.shared = True
    return request


def _sessionless(version: int, frame: bytes | memoryview, pos: int) -> bool:
    """The request's session epoch is -1 (always, before v7), read without decoding it."""
    layouts = _LAYOUTS.get(version)
    if version < 7 or layouts is None or len(frame) - pos < layouts[0].size:
        return True  # (a request too short or of a version not decoded fails in _decode)
    return bool(INT32.unpack_from(frame, pos + layouts[0].size - 4)[0] == -1)  # the head's last


def _decode(version: int, frame: bytes | memoryview, pos: int) -> FetchRequest:
    layouts = _LAYOUTS.get(version)
    if layouts is None:
        raise ValueError(f"Fetch v{version} is not decoded here")
    head, codec = layouts
    flexible = version >= FLEXIBLE_FROM
    r = Reader(frame, pos)
    fields = r.fields(head)[(version < 15):]  # a consumer's replica id is -1: read past it
    max_wait_ms, min_bytes, max_bytes, isolation_level = fields[:4]
    session_id, session_epoch = fields[4:] if version >= 7 else (0, -1)
    with_epoch = version >= 9
    unpack, size = codec.unpack_from, codec.size
    partitions: list[FetchPartition] = []
    append = partitions.append
    for _ in range(r.array_length(flexible)):
        name, topic_id = _topic(r, version, flexible)
        topic = name if topic_id is None else None
        for _ in range(r.array_length(flexible)):
            try:
                values = unpack(r.buf, r.pos)
            except struct.error:
                raise MalformedError("partition runs past the end of the frame") from None
            r.pos += size
            append(FetchPartition(topic, topic_id, values[0], values[1 + with_epoch], values[-1],
                                  values[1] if with_epoch else -1))
            if flexible:
                r.tagged_fields(True)
        if flexible:
            r.tagged_fields(True)
    forgotten: list[tuple[str | uuid.UUID, int]] = []
    if version >= 7:
        for _ in range(r.array_length(flexible)):
            name, topic_id = _topic(r, version, flexible)
            forgotten.extend((topic_id or name, r.int32())
                             for _ in range(r.array_length(flexible)))
            if flexible:
                r.tagged_fields(True)
    if version >= 11:
        r.string(flexible)  # rack id: no replicas to prefer
    if flexible:
        r.tagged_fields(True)
    return FetchRequest(max_wait_ms, min_bytes, max_bytes, isolation_level, session_id,
                        session_epoch, partitions, forgotten)


class RecordsSlice(Protocol):
    """A run of whole record batches that the I/O layer knows how to send (e.g. a FileSlice)."""

    @property
    def length(self) -> int: ...


Records = bytes | RecordsSlice


class PartitionData:
    __slots__ = ("aborted_transactions", "error_code", "high_watermark", "index",
                 "last_stable_offset", "log_start_offset", "records")

    def __init__(self, index: int, error_code: int = 0, high_watermark: int = -1,
                 last_stable_offset: int = -1, log_start_offset: int = -1,
                 aborted_transactions: list[tuple[int, int]] | None = None,
                 records: Records | None = None) -> None:
        self.index = index
        self.error_code = error_code
        self.high_watermark = high_watermark
        self.last_stable_offset = last_stable_offset
        self.log_start_offset = log_start_offset
        self.aborted_transactions = aborted_transactions  # (producer id, first offset)
        self.records = records


class TopicData:
    __slots__ = ("name", "partitions", "topic_id")

    def __init__(self, name: str, partitions: list[PartitionData],
                 topic_id: uuid.UUID | None = None) -> None:
        self.name = name
        self.partitions = partitions
        self.topic_id = topic_id  # what v13+ answers with instead of the name


def records_length(records: Records) -> int:
    return len(records) if isinstance(records, bytes | bytearray | memoryview) else records.length


# Module constants marked Final: compiled (mypyc), they are read without a dictionary lookup.
_SIZE: Final = INT32
_THROTTLE: Final = INT32  # to v6
_TOP: Final = struct.Struct(">ihi")  # v7 on: throttle time, error code, session id
_HEAD: Final = struct.Struct(">ihqqq")  # v5 on: index, error, high watermark, last stable
_HEAD_V4: Final = struct.Struct(">ihqq")  # offset, log start offset (v4 has no log start)
_ABORTED: Final = struct.Struct(">qq")  # producer id, first offset
_NO_REPLICA: Final = INT32.pack(-1)  # v11 on, preferred read replica: none, read from the leader
_TAGS: Final = EMPTY_TAGS


def _tail(version: int, aborted: bool | None, records: int | None) -> bytes:
    """What follows a partition's head when it has no aborted transaction to list and no
    records: aborted (None or []), preferred read replica (none), the records' length."""
    flexible = version >= FLEXIBLE_FROM
    return (array_length(None if aborted is None else 0, flexible)
            + (_NO_REPLICA if version >= 11 else b"")
            + bytes_length(records, flexible) + (_TAGS if flexible else b""))


# By version: the tails of partitions with nothing to list, indexed by
# 2 * (aborted is None) + (records is None)
_QUIET: Final = {version: tuple(_tail(version, None if a else False, None if r else 0)
                                for a in (False, True) for r in (False, True))
                 for version in range(MIN_VERSION, MAX_VERSION + 1)}


def encode_fetch_response(
    header: RequestHeader,
    topics: Sequence[TopicData],
    *,
    error_code: int = 0,
    session_id: int = 0,
    throttle_time_ms: int = 0,
) -> list[bytes | RecordsSlice]:
    """Frame a Fetch response; the first piece starts with the frame's size prefix. Bytes are
    gathered in runs, each joined once, around the record slices."""
    version = header.api_version
    quiet = _QUIET.get(version)
    if quiet is None:
        raise ValueError(f"Fetch v{version} is not encoded here")
    flexible = version >= FLEXIBLE_FROM
    with_log_start = version >= 5
    run: list[bytes] = [response_header(header)]
    write = run.append
    if version >= 7:
        write(_TOP.pack(throttle_time_ms, error_code, session_id))
    else:
        write(_THROTTLE.pack(throttle_time_ms))
    write(array_length(len(topics), flexible))
    pieces: list[bytes | RecordsSlice] = []  # runs before record slices, and the slices
    size = 0  # of what is in pieces
    for topic in topics:
        if version >= TOPIC_IDS_FROM:
            write((topic.topic_id or _ZERO_ID).bytes)
        else:
            write(string(topic.name, flexible))
        write(array_length(len(topic.partitions), flexible))
        for p in topic.partitions:
            if with_log_start:
                write(_HEAD.pack(p.index, p.error_code, p.high_watermark, p.last_stable_offset,
                                 p.log_start_offset))
            else:
                write(_HEAD_V4.pack(p.index, p.error_code, p.high_watermark,
                                    p.last_stable_offset))
            aborted, records = p.aborted_transactions, p.records
            if not aborted and (records is None or records == b""):
                write(quiet[2 * (aborted is None) + (records is None)])
                continue
            write(array_length(None if aborted is None else len(aborted), flexible))
            for producer_id, first_offset in aborted or ():
                write(_ABORTED.pack(producer_id, first_offset))
                if flexible:
                    write(_TAGS)
            if version >= 11:
                write(_NO_REPLICA)
            if records is None:
                write(bytes_length(None, flexible))
            else:
                write(bytes_length(records_length(records), flexible))
                if isinstance(records, bytes | bytearray | memoryview):
                    write(records)
                else:
                    joined = b"".join(run)
                    run.clear()
                    pieces.append(joined)
                    pieces.append(records)
                    size += len(joined) + records.length
            if flexible:
                write(_TAGS)
        if flexible:
            write(_TAGS)
    if flexible:
        write(_TAGS)
    last = b"".join(run)
    if not pieces:
        return [_SIZE.pack(len(last)) + last]
    pieces.append(last)
    first = pieces[0]
    assert isinstance(first, bytes)  # the response header is written before any slice
    pieces[0] = _SIZE.pack(size + len(last)) + first
    return pieces
