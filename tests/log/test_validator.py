"""Validation on the way in (Kafka's LogValidator) at the log, where embedded producers append too,
and the segment roll that keeps index entries within int32. The hostile batches themselves are
sent through a real socket in tests/broker/test_hostile_batches.py."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from logkit import FakeClock, read_records

from hostile import GOOD_PAYLOAD, NOW, forged, raw_record
from minikafka.compression import Compression
from minikafka.errors import InvalidRecordError
from minikafka.log import LogManager, Partition, validator
from minikafka.records import Record, decode_batch, encode_batch, encode_varint

INT32_MAX = 2**31 - 1


@pytest.fixture
def part(log: LogManager) -> Partition:
    log.create_topic("t", 1)
    return log.partition("t", 0)


@pytest.mark.parametrize("codec", list(Compression), ids=[c.name.lower() for c in Compression])
def test_batches_from_encode_batch_pass(part: Partition, codec: Compression) -> None:
    """What embedded producers build passes, keys, headers, timestamps and all."""
    records = [Record(b"v%d" % i * i, key=None if i % 3 else b"k%d" % i,
                      headers=[("h", b"x" * i), ("empty", None)] if i % 2 else (),
                      timestamp=NOW + 7 * i) for i in range(300)]
    part.append(encode_batch(records, compression=codec))
    got = read_records(part)
    assert [(r.key, r.value, list(r.headers), r.timestamp) for r in got] == \
        [(r.key, r.value, list(r.headers), r.timestamp) for r in records]


def test_create_time_max_timestamp_is_the_records(part: Partition) -> None:
    """Kafka sets a CreateTime batch's maxTimestamp from its records: a lying one would skew
    retention, segment rolls and time lookups."""
    payload = raw_record(0, b"a") + raw_record(1, b"b", ts_delta=5)
    part.append(forged(payload, max_timestamp=NOW + 10**9))
    assert part.max_timestamp == NOW + 5
    stored = decode_batch(part.read_batches(0, 1 << 20))  # the CRC was computed anew
    assert stored.header.max_timestamp == NOW + 5
    assert [r.timestamp for r in stored.records] == [NOW, NOW + 5]


def test_record_headers_are_walked(part: Partition) -> None:
    good = encode_batch([Record(b"v", headers=[("a", b"1"), ("b", None)], timestamp=NOW)])
    part.append(good)
    count_at = good.rindex(encode_varint(2))  # the header count, two headers follow
    lying = bytearray(good)
    lying[count_at] = encode_varint(3)[0]
    with pytest.raises(InvalidRecordError):
        part.append(forged(bytes(lying[61:]), record_count=1, last_offset_delta=0))
    assert part.log_end_offset == 1


def test_compacted_topic_refuses_records_without_a_key(log: LogManager) -> None:
    """Kafka: a compacted topic keeps the last record per key, so a null key is INVALID_RECORD."""
    log.create_topic("c", 1, {"cleanup.policy": "compact"})
    part = log.partition("c", 0)
    with pytest.raises(InvalidRecordError, match="without a key"):
        part.append(encode_batch([Record(b"v", key=b"k"), Record(b"v", key=None)]))
    part.append(encode_batch([Record(b"v", key=b"k")]))
    assert part.log_end_offset == 1


# --- the roll that keeps index entries within int32 --------------------------------------------
# No validated batch can move the log end by more than 2^31 at once, and 2^31 records in one
# segment take far longer to write than a test may: these tests craft the state instead (a log
# end far past the active segment's base, or a segment size near 2 GiB) and check the rule.


@pytest.fixture
def broker_part(open_log: Callable[..., LogManager], clock: FakeClock) -> Partition:
    """A broker-mode partition (exclusive: no other process's state to adopt) that indexes
    every batch."""
    log = open_log(exclusive=True, clock=clock)
    log.create_topic("t", 1, {"index.interval.bytes": "1",
                              "segment.bytes": str(2**31 - 1)})  # Kafka's largest (an INT)
    return log.partition("t", 0)


def test_segment_rolls_before_relative_offsets_overflow(broker_part: Partition) -> None:
    part = broker_part
    part.append(forged())
    part.log_end_offset = INT32_MAX - 1
    part.append(forged())  # its last offset is INT32_MAX past the segment's base: still fits
    part.append(forged())
    assert [s.base_offset for s in part.segments] == [0, INT32_MAX + 1]
    got = read_records(part, INT32_MAX - 1)
    assert [r.offset for r in got] == [INT32_MAX - 1 + i for i in range(4)]


def test_segment_rolls_before_positions_overflow(broker_part: Partition) -> None:
    part = broker_part
    part.append(forged())
    part.segments[-1].size = INT32_MAX - 10  # as if 2 GiB were written (nothing is, past it)
    part.append(forged())
    assert [s.base_offset for s in part.segments] == [0, 2]
    assert part.segments[-1].size == len(forged())


# --- the compiled validator does what its source does ---------------------------------------------


def _interpreted_validator() -> ModuleType:
    """validator.py loaded from its source, whether or not a compiled module shadows it."""
    source = Path(validator.__file__).with_name("validator.py")
    spec = importlib.util.spec_from_file_location("minikafka.log.validator_source", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PAYLOADS = {
    "good": (GOOD_PAYLOAD, 2),
    "headers": (encode_batch([Record(b"v", headers=[("a", b"1"), ("b", None)])])[61:], 1),
    "long-varint": (b"\xff" * 11, 1),
    "swapped": (raw_record(1, b"a") + raw_record(0, b"b"), 2),
    "truncated": (GOOD_PAYLOAD[:-3], 2),
    "trailing": (GOOD_PAYLOAD + b"\x00", 2),
    "length": (raw_record(0, b"a", length_error=1) + raw_record(1, b"b"), 2),
    "negative-length": (encode_varint(-3) + GOOD_PAYLOAD, 1),
    "huge-value": (raw_record(0, b"a")[:-3] + encode_varint(2**40) + b"a\x00", 1),
}


def _outcome(walk: Callable[[bytes, int, bool], int], payload: bytes, count: int) -> object:
    try:
        return walk(payload, count, False)
    except InvalidRecordError as exc:
        return str(exc)


@pytest.mark.parametrize(("payload", "count"), PAYLOADS.values(), ids=PAYLOADS.keys())
def test_compiled_walk_agrees_with_its_source(payload: bytes, count: int) -> None:
    source = _interpreted_validator()
    assert _outcome(validator.walk_records, payload, count) == \
        _outcome(source.walk_records, payload, count)
