"""Hostile record batches: a good batch from `encode_batch` with header fields or records replaced
and the CRC computed anew, so only a check of the header against the records can tell."""

from __future__ import annotations

import struct

from crc32c import crc32c

from minikafka.records import (
    CRC_AT,
    CRC_START,
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    Record,
    encode_batch,
    encode_varint,
    read_header,
)

NOW = 1_700_000_000_000


def raw_record(offset_delta: int, value: bytes, *, ts_delta: int = 0, length_error: int = 0
               ) -> bytes:
    """One record (no key, no headers) as a batch's payload holds it; `length_error` makes its
    length varint lie by that many bytes."""
    body = b"".join((b"\x00", encode_varint(ts_delta), encode_varint(offset_delta),
                     encode_varint(-1), encode_varint(len(value)), value, b"\x00"))
    return encode_varint(len(body) + length_error) + body


GOOD_PAYLOAD = raw_record(0, b"a") + raw_record(1, b"b")


def forged(payload: bytes | None = None, **fields: int) -> bytes:
    """A two-record batch (values b"a", b"b", both at NOW) with `payload` as its records and
    `fields` (BatchHeader names) as its header, its length and CRC made to match."""
    good = encode_batch([Record(b"a", timestamp=NOW), Record(b"b", timestamp=NOW)])
    body = good[HEADER_SIZE:] if payload is None else payload
    header = read_header(good)._replace(**fields)
    header = header._replace(batch_length=HEADER_SIZE - LOG_OVERHEAD + len(body))
    raw = bytearray(HEADER.pack(*header) + body)
    struct.pack_into(">I", raw, CRC_AT, crc32c(raw[CRC_START:]))
    return bytes(raw)
