"""kcat's text conventions, to the byte: the -f format (fmt_parse in kcat's format.c), the -D/-K
delimiters (parse_delim in kcat.c) and how produce splits its input into keys and values.

Errors are ValueError with kcat's own wording, for `cli.main` to print in one line."""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..client import Message

KeyValue = tuple[bytes | None, bytes | None]
NULL = b"NULL"  # kcat's null_str: what -Z prints for an empty or null key or value
_READ_SIZE = 64 * 1024
_DELIM_HEX = re.compile(rb"\\x([0-9a-fA-F]*)")
_FORMAT_ESCAPE = re.compile(
    rb"\\(?:x([0-9a-fA-F]+)|(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)|(.))", re.S)
_ESCAPES = {b"t": b"\t", b"n": b"\n", b"r": b"\r"}

Field = Callable[["Message"], bytes]


class Input(Protocol):
    """A buffered binary stream (stdin's buffer, a file opened "rb")."""

    def read1(self, size: int = -1, /) -> bytes: ...


def parse_delim(text: str) -> bytes:
    """-D / -K: \\n, \\t and \\xNN are the only escapes, as kcat's parse_delim."""
    raw = os.fsencode(text)

    def hex_byte(match: re.Match[bytes]) -> bytes:
        if not match.group(1):
            raise ValueError(f"Delimiter {os.fsdecode(match.group(0))} expects hex number")
        return bytes([int(match.group(1), 16) & 0xFF])

    return _DELIM_HEX.sub(hex_byte, raw.replace(b"\\n", b"\n").replace(b"\\t", b"\t"))


def _unescape(text: bytes) -> bytes:
    """A literal piece of -f: \\t \\n \\r, \\xNN in hex, \\NNN as C's strtoul reads it (0x..
    hex, 0.. octal, else decimal) cut to a byte; any other escaped character is itself. (kcat's
    C strings would end the piece at a NUL byte; here \\x00 prints one.)"""

    def one(match: re.Match[bytes]) -> bytes:
        hex_digits, number, other = match.groups()
        if hex_digits is not None:
            return bytes([int(hex_digits, 16) & 0xFF])
        if number is not None:
            base = 16 if number[:2].lower() == b"0x" else 8 if number.startswith(b"0") else 10
            return bytes([int(number, base) & 0xFF])
        return _ESCAPES.get(other, other)

    return _FORMAT_ESCAPE.sub(one, text)


def _headers(m: Message) -> bytes:
    return b",".join(name.encode() + b"=" + (NULL if value is None else value)
                     for name, value in m.headers)


def _length(data: bytes | None) -> int:
    return -1 if data is None else len(data)


def _fields(null: bytes) -> dict[int, Field]:
    return {
        ord("t"): lambda m: m.topic.encode(),
        ord("p"): lambda m: b"%d" % m.partition,
        ord("o"): lambda m: b"%d" % m.offset,
        ord("k"): lambda m: m.key or null,
        ord("K"): lambda m: b"%d" % _length(m.key),
        ord("s"): lambda m: m.value or null,
        ord("S"): lambda m: b"%d" % _length(m.value),
        ord("R"): lambda m: struct.pack(">i", _length(m.value)),
        ord("T"): lambda m: b"%d" % m.timestamp,
        ord("h"): _headers,
    }


def _literal(text: bytes) -> Field:
    return lambda _m: text


def make_formatter(fmt: str | None, *, key_delim: str | None = None, delim: str = "\\n",
                   null: bool = False) -> Callable[[Message], bytes]:
    """kcat's output for one record: -f exactly as given (no newline added), or without -f
    kcat's default `%s<delim>`, `%k<key delim>%s<delim>` with -K. With `null` (-Z) an empty or
    null key or value prints NULL; %K / %S / %R print -1 for null."""
    fields = _fields(NULL if null else b"")
    if fmt is None:
        end = _literal(parse_delim(delim))
        pieces = ([fields[ord("s")], end] if key_delim is None else
                  [fields[ord("k")], _literal(parse_delim(key_delim)), fields[ord("s")], end])
    else:
        pieces = _parse_format(os.fsencode(fmt), fields)

    def render(m: Message) -> bytes:
        return b"".join(piece(m) for piece in pieces)

    return render


def _parse_format(fmt: bytes, fields: dict[int, Field]) -> list[Field]:
    pieces = []
    pos = 0
    while pos < len(fmt):
        at = fmt.find(b"%", pos)
        if at < 0:
            pieces.append(_literal(_unescape(fmt[pos:])))
            break
        if at > pos:
            pieces.append(_literal(_unescape(fmt[pos:at])))
        if at + 1 == len(fmt):
            raise ValueError("Empty formatter")
        token = fmt[at + 1]
        if token == ord("%"):
            pieces.append(_literal(b"%"))
        elif token in fields:
            pieces.append(fields[token])
        else:
            raise ValueError(f"Unsupported formatter: %{chr(token)}")
        pos = at + 2
    return pieces


def read_messages(stream: Input, delim: bytes, progress: Callable[[int], None]
                  ) -> Iterator[tuple[int, bytes]]:
    """(line number, message) for each message of `stream` split on `delim`, and the last one
    even without a delimiter after it; empty messages are skipped, as kcat does. It reads what
    is there (read1), so a line typed or piped from `tail -f` goes out without waiting."""
    pending = b""
    number = 0
    while chunk := stream.read1(_READ_SIZE):
        progress(len(chunk))
        *complete, pending = (pending + chunk).split(delim)
        for message in complete:
            number += 1
            if message:
                yield number, message
    if pending:
        yield number + 1, pending


def split_key(message: bytes, key_delim: bytes | None, null: bool) -> KeyValue:
    """kcat's producer: KEY<key delim>VALUE; without the delimiter the whole message is the
    value and the key is null. With `null` (-Z) an empty key or value is sent as null."""
    if key_delim is None:
        return None, message
    at = message.find(key_delim)  # an empty delimiter is found at 0: an empty key, as kcat
    if at < 0:
        return None, message
    key, value = message[:at], message[at + len(key_delim):]
    if null:
        return key or None, value or None
    return key, value
