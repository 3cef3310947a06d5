"""Base-128 varints: the protocol's lengths and counts in flexible versions are unsigned ones, and
records' fields are zigzag-encoded ones (`records.py`). Shared so neither layer imports the other.
"""

from __future__ import annotations


def uvarint(value: int) -> bytes:
    """Unsigned varint: seven bits a byte, least significant first, high bit = more follow."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
