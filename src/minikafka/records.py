"""RecordBatch v2: the bytes Kafka clients send, the bytes we store, the bytes we serve.

The broker and the log only ever look at the fixed 61-byte batch header (`BatchHeader`); records
are encoded by producers (`encode_batch`) and decoded by consumers (`decode_batch`). The CRC-32C
covers bytes 21..end, so assigning offsets (bytes 0-7) and the leader epoch (12-15) never needs a
new CRC.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from crc32c import crc32c

from .clock import wall_ms
from .compression import Compression, compress, decompress
from .errors import CorruptRecordError
from .varint import uvarint

HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER.size  # 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: the bytes batchLength does not count
# Byte positions of the header fields the broker patches in place.
BASE_OFFSET_AT = 0
LEADER_EPOCH_AT = 12
MAGIC_AT = 16
CRC_AT = 17
CRC_START = ATTRIBUTES_AT = 21  # the CRC covers the attributes and everything after them
MAX_TIMESTAMP_AT = 35
MAGIC = 2
COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_BIT = 0x08
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20
_LENGTH = struct.Struct(">qi")
_INT64 = struct.Struct(">q")
_INT32 = struct.Struct(">i")
_INT16 = struct.Struct(">h")
_UINT32 = struct.Struct(">I")


class BatchHeader(NamedTuple):
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies on disk and on the wire."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_BIT)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_BIT)


def read_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    return BatchHeader._make(HEADER.unpack_from(buf, pos))


def batch_size_at(buf: bytes | bytearray | memoryview, pos: int = 0) -> int:
    """Size of the batch starting at `pos`, from its length field alone."""
    length: int = _LENGTH.unpack_from(buf, pos)[1]
    return length + LOG_OVERHEAD


def validate_batch(buf: bytes | bytearray | memoryview, pos: int = 0, size: int | None = None
                   ) -> BatchHeader:
    """Check one batch's framing, magic and CRC; return its header or raise CorruptRecordError."""
    available = len(buf) - pos if size is None else size
    if available < HEADER_SIZE:
        raise CorruptRecordError(f"record batch truncated: {available} bytes, header needs 61")
    header = read_header(buf, pos)
    if header.magic != MAGIC:
        raise CorruptRecordError(f"unsupported record batch magic {header.magic} (need 2)")
    if header.batch_length < HEADER_SIZE - LOG_OVERHEAD or header.size > available:
        raise CorruptRecordError(
            f"record batch length {header.batch_length} does not fit the {available} bytes sent"
        )
    if header.last_offset_delta < 0 or header.record_count < 0:
        raise CorruptRecordError("record batch has a negative record count or offset delta")
    view = memoryview(buf)[pos + CRC_START : pos + header.size]
    if crc32c(view) != header.crc:
        raise CorruptRecordError("record batch CRC-32C mismatch")
    return header


def iter_batches(buf: bytes | bytearray | memoryview, validate: bool = True
                 ) -> Iterator[tuple[int, BatchHeader]]:
    """Yield (position, header) of each batch in a buffer of concatenated batches.

    A truncated final batch ends the iteration silently (a fetch may cut one, KIP-74); with
    `validate`, a corrupt one raises.
    """
    pos, end = 0, len(buf)
    while end - pos >= LOG_OVERHEAD:
        size = batch_size_at(buf, pos)
        if size > end - pos:
            return
        header = validate_batch(buf, pos, size) if validate else read_header(buf, pos)
        yield pos, header
        pos += size


def assign_offsets(batch: bytearray | memoryview, base_offset: int, leader_epoch: int = 0) -> None:
    """Patch a batch in place with its log offsets; the CRC stays valid (it starts at byte 21)."""
    _INT64.pack_into(batch, BASE_OFFSET_AT, base_offset)
    _INT32.pack_into(batch, LEADER_EPOCH_AT, leader_epoch)


def set_log_append_time(batch: bytearray | memoryview, timestamp_ms: int) -> None:
    """LogAppendTime: mark the batch's timestamps as the broker's and make `timestamp_ms` its max
    timestamp (what consumers then see for every record). Both fields are under the CRC, so the
    CRC is computed anew."""
    attributes = _INT16.unpack_from(batch, ATTRIBUTES_AT)[0]
    _INT16.pack_into(batch, ATTRIBUTES_AT, attributes | TIMESTAMP_TYPE_BIT)
    set_max_timestamp(batch, timestamp_ms)


def set_max_timestamp(batch: bytearray | memoryview, timestamp_ms: int) -> None:
    """Patch a batch's max timestamp in place and compute its CRC anew (the field is under it)."""
    _INT64.pack_into(batch, MAX_TIMESTAMP_AT, timestamp_ms)
    set_crc(batch)


def set_crc(batch: bytearray | memoryview) -> None:
    """Write the CRC-32C of `batch` (one whole batch) into its header, after a change."""
    _UINT32.pack_into(batch, CRC_AT, crc32c(memoryview(batch)[CRC_START:]))


# --- varints (zigzag, as Kafka's records use them) --------------------------------------------


def _encode_varint(value: int) -> bytes:
    return uvarint((value << 1) ^ (value >> 63))


_SMALL = 1 << 14
_VARINTS = [_encode_varint(i) for i in range(_SMALL)]
_MINUS_ONE = _encode_varint(-1)
_ZIGZAG = [(b >> 1) ^ -(b & 1) for b in range(0x80)]  # one-byte varints, decoded


def encode_varint(value: int) -> bytes:
    if 0 <= value < _SMALL:
        return _VARINTS[value]
    return _encode_varint(value)


def decode_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Return (value, next position)."""
    b = buf[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    c = buf[pos + 1]
    if c < 0x80:  # two bytes: lengths of 64..8191, the next most common case
        v = (b & 0x7F) | (c << 7)
        return (v >> 1) ^ -(v & 1), pos + 2
    result, shift = (b & 0x7F) | ((c & 0x7F) << 7), 14
    pos += 1
    while True:
        pos += 1
        b = buf[pos]
        result |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            raise CorruptRecordError("varint longer than 10 bytes")
    return (result >> 1) ^ -(result & 1), pos + 1


# --- records ------------------------------------------------------------------------------------

Headers = Sequence[tuple[str, bytes | None]]


@dataclass(slots=True)
class Record:
    """One record as a producer hands it over or a consumer receives it."""

    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()
    timestamp: int | None = None  # ms since the epoch; None means "now"
    offset: int = -1


@dataclass(slots=True)
class RecordBatch:
    """A decoded batch: its header and its records (offsets and timestamps made absolute)."""

    header: BatchHeader
    records: list[Record] = field(default_factory=list)


def _encode_bytes(data: bytes | None) -> bytes:
    if data is None:
        return _MINUS_ONE
    return encode_varint(len(data)) + data


def _encode_headers(headers: Headers) -> bytes:
    if not headers:
        return b"\x00"
    parts = [encode_varint(len(headers))]
    for name, value in headers:
        raw = name.encode()
        parts.append(encode_varint(len(raw)))
        parts.append(raw)
        parts.append(_encode_bytes(value))
    return b"".join(parts)


RecordRow = tuple[bytes | None, bytes | None, Headers, int | None]  # key, value, headers, ts


def encode_batch(
    records: Sequence[Record] | Sequence[RecordRow],
    *,
    base_offset: int = 0,
    compression: Compression | int = Compression.NONE,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    log_append_time: bool = False,
    now_ms: int | None = None,
    transactional: bool = False,
    control: bool = False,
) -> bytes:
    """Build one RecordBatch v2 with a valid CRC-32C from `Record`s or, faster, from
    (key, value, headers, timestamp) rows."""
    if not records:
        raise ValueError("a record batch needs at least one record")
    rows: Sequence[RecordRow] = (
        [(r.key, r.value, r.headers, r.timestamp) for r in records]  # type: ignore[union-attr]
        if isinstance(records[0], Record) else records  # type: ignore[assignment]
    )
    now = wall_ms() if now_ms is None else now_ms
    timestamps = [now if row[3] is None else row[3] for row in rows]
    base_ts = timestamps[0]
    max_ts = max(timestamps)
    body: list[bytes] = []
    append = body.append
    varints, small, minus_one = _VARINTS, _SMALL, _MINUS_ONE
    for delta, ((key, value, headers, _), ts) in enumerate(zip(rows, timestamps, strict=True)):
        ts_delta = ts - base_ts
        inner = b"".join((
            b"\x00",
            varints[ts_delta] if 0 <= ts_delta < small else _encode_varint(ts_delta),
            varints[delta] if delta < small else _encode_varint(delta),
            minus_one if key is None else encode_varint(len(key)) + key,
            minus_one if value is None else encode_varint(len(value)) + value,
            _encode_headers(headers) if headers else b"\x00",
        ))
        append(encode_varint(len(inner)))
        append(inner)
    payload = compress(Compression(compression), b"".join(body))
    attributes = (int(compression) | (TIMESTAMP_TYPE_BIT if log_append_time else 0)
                  | (TRANSACTIONAL_BIT if transactional else 0) | (CONTROL_BIT if control else 0))
    tail = struct.pack(
        ">hiqqqhii", attributes, len(rows) - 1, base_ts, max_ts,
        producer_id, producer_epoch, base_sequence, len(rows),
    ) + payload
    crc = crc32c(tail)
    return struct.pack(">qiibI", base_offset, HEADER_SIZE - LOG_OVERHEAD + len(payload), 0, MAGIC,
                       crc) + tail


# --- transaction markers (Kafka's EndTransactionMarker) ------------------------------------------

_MARKER_KEY = struct.Struct(">hh")  # version 0, type: 0 abort, 1 commit
_MARKER_VALUE = struct.Struct(">hi")  # version 0, coordinator epoch
ABORT, COMMIT = 0, 1


def encode_marker(producer_id: int, producer_epoch: int, commit: bool, coordinator_epoch: int,
                  timestamp_ms: int, base_offset: int = 0) -> bytes:
    """A COMMIT or ABORT control batch: one record whose key is the marker type and whose value
    the coordinator epoch; transactional and control, base sequence -1. Clients skip it."""
    key = _MARKER_KEY.pack(0, COMMIT if commit else ABORT)
    value = _MARKER_VALUE.pack(0, coordinator_epoch)
    return encode_batch([(key, value, (), timestamp_ms)], base_offset=base_offset,
                        producer_id=producer_id, producer_epoch=producer_epoch,
                        transactional=True, control=True)


def decode_marker(batch: bytes) -> tuple[bool, int]:
    """(commit, coordinator epoch) of a control batch written by `encode_marker` (or Kafka)."""
    record = decode_batch(batch).records[0]
    if record.key is None or record.value is None or len(record.key) < _MARKER_KEY.size \
            or len(record.value) < _MARKER_VALUE.size:
        raise CorruptRecordError("control record is not a transaction marker")
    _version, kind = _MARKER_KEY.unpack_from(record.key)
    return kind == COMMIT, _MARKER_VALUE.unpack_from(record.value)[1]


def _decode_bytes(buf: bytes, pos: int) -> tuple[bytes | None, int]:
    b = buf[pos]
    length, pos = (_ZIGZAG[b], pos + 1) if b < 0x80 else decode_varint(buf, pos)
    if length < 0:
        return None, pos
    end = pos + length
    if end > len(buf):
        raise CorruptRecordError("record field runs past the end of its batch")
    return buf[pos:end], end


def _decode_headers(data: bytes, pos: int) -> tuple[list[tuple[str, bytes | None]], int]:
    count, pos = decode_varint(data, pos)
    headers = []
    for _ in range(count):
        name, pos = _decode_bytes(data, pos)
        value, pos = _decode_bytes(data, pos)
        headers.append(((name or b"").decode(errors="replace"), value))
    return headers, pos


def decode_records(header: BatchHeader, payload: bytes) -> list[Record]:
    """Decode the records after a batch header (payload: bytes 61..end, maybe compressed).

    The consumer's hot loop: one-byte varints (the common case) are decoded inline."""
    data = decompress(header.compression, payload) if header.compression else payload
    records: list[Record] = []
    append = records.append
    pos, base_offset, base_ts = 0, header.base_offset, header.base_timestamp
    log_append = header.attributes & TIMESTAMP_TYPE_BIT
    varint, zz = decode_varint, _ZIGZAG
    no_headers: tuple[()] = ()
    try:
        for _ in range(header.record_count):
            b = data[pos]
            length, pos = (zz[b], pos + 1) if b < 0x80 else varint(data, pos)
            end = pos + length
            b = data[pos + 1]
            ts_delta, pos = (zz[b], pos + 2) if b < 0x80 else varint(data, pos + 1)
            b = data[pos]
            off_delta, pos = (zz[b], pos + 1) if b < 0x80 else varint(data, pos)
            key, pos = _decode_bytes(data, pos)
            value, pos = _decode_bytes(data, pos)
            if data[pos] == 0:
                headers: Headers = no_headers
                pos += 1
            else:
                headers, pos = _decode_headers(data, pos)
            if pos != end:
                raise CorruptRecordError("record length does not match its fields")
            ts = header.max_timestamp if log_append else base_ts + ts_delta
            append(Record(value, key, headers, ts, base_offset + off_delta))
    except IndexError as exc:
        raise CorruptRecordError("record batch ends inside a record") from exc
    return records


def decode_batch(buf: bytes | memoryview, pos: int = 0) -> RecordBatch:
    header = validate_batch(buf, pos)
    payload = bytes(memoryview(buf)[pos + HEADER_SIZE : pos + header.size])
    return RecordBatch(header, decode_records(header, payload))


def decode_batches(buf: bytes | memoryview) -> Iterable[RecordBatch]:
    """Decode every whole batch in a fetch-style buffer (a cut final batch is skipped)."""
    view = memoryview(buf)
    for pos, header in iter_batches(view):
        payload = bytes(view[pos + HEADER_SIZE : pos + header.size])
        yield RecordBatch(header, decode_records(header, payload))
