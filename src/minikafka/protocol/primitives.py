"""Kafka's wire primitives, for the few places we bypass the schema-driven classes.

The request header is parsed here (it is read on every request and is tiny), the Produce request
is read with `Reader`, and the Produce and Fetch responses are written with these helpers.
"""

from __future__ import annotations

import struct
import uuid

from ..errors import KafkaError
from ..varint import uvarint

INT16 = struct.Struct(">h")
INT32 = struct.Struct(">i")
INT64 = struct.Struct(">q")
EMPTY_TAGS = b"\x00"  # a tagged-field section with no fields


class MalformedError(KafkaError):
    """Bytes that do not parse as the message they claim to be; the connection cannot go on."""


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


class Reader:
    """Reads a request body field by field; MalformedError when it runs past the end."""

    def __init__(self, buf: bytes | memoryview, pos: int = 0) -> None:
        self.buf = memoryview(buf)
        self.pos = pos

    def _fixed(self, codec: struct.Struct) -> int:
        value: int = self.fields(codec)[0]
        return value

    def fields(self, codec: struct.Struct) -> tuple[int, ...]:
        """Several fixed-size fields in one unpack."""
        try:
            values: tuple[int, ...] = codec.unpack_from(self.buf, self.pos)
        except struct.error:
            raise MalformedError("field runs past the end of the frame") from None
        self.pos += codec.size
        return values

    def int16(self) -> int:
        return self._fixed(INT16)

    def int32(self) -> int:
        return self._fixed(INT32)

    def _length(self, flexible: bool, short: bool) -> int:
        """A (nullable) length: compact (varint of length + 1) or INT16 / INT32; -1 is null."""
        if flexible:
            value, self.pos = read_uvarint(self.buf, self.pos)
            return value - 1
        return self._fixed(INT16 if short else INT32)

    def _take(self, length: int) -> memoryview:
        end = self.pos + length
        if length < 0 or end > len(self.buf):
            raise MalformedError(f"a {length}-byte field runs past the end of the frame")
        view = self.buf[self.pos : end]
        self.pos = end
        return view

    def string(self, flexible: bool) -> str | None:
        length = self._length(flexible, short=True)
        return None if length == -1 else str(self._take(length), "utf-8", "replace")

    def bytes(self, flexible: bool) -> memoryview | None:
        """A nullable bytes / records field, as a view into the frame (no copy)."""
        length = self._length(flexible, short=False)
        return None if length == -1 else self._take(length)

    def array_length(self, flexible: bool) -> int:
        """A non-nullable array's element count; MalformedError for null (or a negative
        count), which Kafka's parser refuses too."""
        count = self._length(flexible, short=False)
        if count < 0:
            raise MalformedError(f"null or negative count {count} for a non-nullable array")
        return count

    def read_uuid(self) -> uuid.UUID:
        return uuid.UUID(bytes=bytes(self._take(16)))

    def required_string(self, flexible: bool) -> str:
        """A non-nullable string; MalformedError for null."""
        value = self.string(flexible)
        if value is None:
            raise MalformedError("null for a non-nullable string")
        return value

    def tagged_fields(self, flexible: bool) -> None:
        if flexible:
            self.pos = skip_tagged_fields(self.buf, self.pos)
