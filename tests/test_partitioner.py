"""Key placement must match the Java client (murmur2) and librdkafka (crc32) exactly."""

from __future__ import annotations

import zlib
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from minikafka.partitioner import (
    Partitioner,
    crc32_partition,
    murmur2,
    murmur2_partition,
    to_positive,
)


@pytest.mark.parametrize(("key", "expected"), [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
])
def test_murmur2_matches_kafkas_vectors(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


@given(st.binary(max_size=300))
def test_murmur2_matches_kafka_python(key: bytes) -> None:
    # kafka-python returns the unsigned 32-bit pattern; Java's int is the signed one.
    assert murmur2(key) & 0xFFFFFFFF == kafka_python_murmur2(key) & 0xFFFFFFFF
    assert -(2**31) <= murmur2(key) < 2**31


@given(st.binary(max_size=64), st.integers(1, 1000))
def test_partition_choices(key: bytes, partitions: int) -> None:
    assert murmur2_partition(key, partitions) == (kafka_python_murmur2(key) & 0x7FFFFFFF) \
        % partitions
    assert crc32_partition(key, partitions) == zlib.crc32(key) % partitions
    assert Partitioner("murmur2")(key, partitions) == murmur2_partition(key, partitions)
    assert Partitioner("crc32")(key, partitions) == crc32_partition(key, partitions)


def test_to_positive_is_javas_mask_not_abs() -> None:
    assert to_positive(-1) == 0x7FFFFFFF
    assert to_positive(-(2**31)) == 0
    assert murmur2_partition(b"21", 10) == (-973932308 & 0x7FFFFFFF) % 10


def test_the_two_partitioners_really_differ() -> None:
    keys = [f"order-{i}".encode() for i in range(50)]
    assert [murmur2_partition(k, 7) for k in keys] != [crc32_partition(k, 7) for k in keys]


def test_keyless_records_spread_evenly() -> None:
    partitioner = Partitioner()
    counts = Counter(partitioner(None, 4) for _ in range(400))
    assert counts == {0: 100, 1: 100, 2: 100, 3: 100}


def test_same_key_same_partition_every_time() -> None:
    partitioner = Partitioner()
    assert len({partitioner(b"order-0042", 12) for _ in range(20)}) == 1


def test_unknown_partitioner_is_refused() -> None:
    with pytest.raises(ValueError, match="murmur2"):
        Partitioner("fnv")
