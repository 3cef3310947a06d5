"""Kafka's wire primitives, for the few places we bypass the schema-driven classes.

The request header is parsed here (it is read on every request and is tiny), and the Fetch
response is written here around record slices that must not pass through Python bytes.
"""

from __future__ import annotations

import struct

from ..errors import KafkaError

INT8 = struct.Struct(">b")
INT16 = struct.Struct(">h")
INT32 = struct.Struct(">i")
INT64 = struct.Struct(">q")
EMPTY_TAGS = b"\x00"  # a tagged-field section with no fields


class MalformedError(KafkaError):
    """Bytes that do not parse as the message they claim to be; the connection cannot go on."""


def uvarint(value: int) -> bytes:
    """Unsigned varint (lengths and counts in flexible versions)."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_uvarint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Return (value, next position); raise MalformedError on truncation or overlong input."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise MalformedError("varint runs past the end of the frame")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 28:
            raise MalformedError("varint longer than 5 bytes")


def skip_tagged_fields(buf: bytes | memoryview, pos: int) -> int:
    """Skip a tagged-field section (we define no tags we read); return the next position."""
    count, pos = read_uvarint(buf, pos)
    for _ in range(count):
        _tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        pos += size
        if pos > len(buf):
            raise MalformedError("tagged field runs past the end of the frame")
    return pos


def string(value: str | None, flexible: bool) -> bytes:
    """A (nullable) string, compact in flexible versions."""
    if value is None:
        return b"\x00" if flexible else INT16.pack(-1)
    raw = value.encode()
    return (uvarint(len(raw) + 1) if flexible else INT16.pack(len(raw))) + raw


def array_length(count: int | None, flexible: bool) -> bytes:
    """An array's (nullable) length prefix, compact in flexible versions."""
    if count is None:
        return b"\x00" if flexible else INT32.pack(-1)
    return uvarint(count + 1) if flexible else INT32.pack(count)


def bytes_length(length: int | None, flexible: bool) -> bytes:
    """The length prefix of a (nullable) bytes/records field."""
    if length is None:
        return b"\x00" if flexible else INT32.pack(-1)
    return uvarint(length + 1) if flexible else INT32.pack(length)
