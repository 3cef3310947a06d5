"""Choosing a partition for a key, the way the clients do.

Java's default partitioner (and kafka-python's, and confluent-kafka's `murmur2_random`) takes
`toPositive(murmur2(key)) % partitions`; librdkafka's default (`consistent_random`) takes
`crc32(key) % partitions`. Producers in different languages only agree on placement if they agree
on this, which is why it is a choice here.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (seed 0x9747b28c), as a signed 32-bit int like Java's Utils.murmur2."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    end = length - (length & 3)
    for i in range(0, end, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def to_positive(value: int) -> int:
    return value & 0x7FFFFFFF


def murmur2_partition(key: bytes, partitions: int) -> int:
    return to_positive(murmur2(key)) % partitions


def crc32_partition(key: bytes, partitions: int) -> int:
    return zlib.crc32(key) % partitions


KeyPartitioner = Callable[[bytes, int], int]
PARTITIONERS: dict[str, KeyPartitioner] = {
    "murmur2": murmur2_partition,  # Java / kafka-python default
    "crc32": crc32_partition,  # librdkafka default ("consistent")
}


class Partitioner:
    """Keyed records go by hash; keyless ones are spread round-robin, a batch at a time."""

    def __init__(self, name: str = "murmur2") -> None:
        if name not in PARTITIONERS:
            choices = ", ".join(PARTITIONERS)
            raise ValueError(f"unknown partitioner {name!r} (choose from {choices})")
        self.name = name
        self.by_key = PARTITIONERS[name]
        self._counter = itertools.count()

    def __call__(self, key: bytes | None, partitions: int) -> int:
        return self.next_sticky(partitions) if key is None else self.by_key(key, partitions)

    def next_sticky(self, partitions: int) -> int:
        """The partition for the next run of keyless records."""
        return next(self._counter) % partitions
