"""Batches whose header and CRC are valid but whose fields lie about their records, or that a
client may not send, sent through a real socket: each gets Kafka's error code, nothing of it is
stored, and consumers read the good records around it."""

from __future__ import annotations

import struct

import pytest

from hostile import GOOD_PAYLOAD, forged, raw_record
from minikafka.errors import ErrorCode

from .conftest import InProcessBroker, RawClient, create_topic
from .test_bad_input import high_watermark, partition_error, produce_request
from .test_confluent import consume

INT32_MAX = 2**31 - 1
XERIAL = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
TWO = [raw_record(0, b"a"), raw_record(1, b"b")]

HOSTILE = {
    # codec bits 0-2 name no codec (Kafka knows 0-4)
    "codec-5": (forged(attributes=5), ErrorCode.UNSUPPORTED_COMPRESSION_TYPE),
    "codec-6": (forged(attributes=6), ErrorCode.UNSUPPORTED_COMPRESSION_TYPE),
    "codec-7": (forged(attributes=7), ErrorCode.UNSUPPORTED_COMPRESSION_TYPE),
    # a known codec over bytes it cannot decompress (the plain records)
    "gzip-garbage": (forged(attributes=1), ErrorCode.CORRUPT_MESSAGE),
    "snappy-garbage": (forged(attributes=2), ErrorCode.CORRUPT_MESSAGE),
    "lz4-garbage": (forged(attributes=3), ErrorCode.CORRUPT_MESSAGE),
    "zstd-garbage": (forged(attributes=4), ErrorCode.CORRUPT_MESSAGE),
    # snappy as the Java client frames it (xerial), with a block size that is cut or negative
    "snappy-xerial-cut": (forged(XERIAL + b"\x00\x00", attributes=2), ErrorCode.CORRUPT_MESSAGE),
    "snappy-xerial-negative": (forged(XERIAL + struct.pack(">i", -4), attributes=2),
                               ErrorCode.CORRUPT_MESSAGE),
    # record count against the records
    "count-above-records": (forged(record_count=3, last_offset_delta=2),
                            ErrorCode.INVALID_RECORD),
    "count-below-records": (forged(record_count=1, last_offset_delta=0),
                            ErrorCode.INVALID_RECORD),
    "count-zero": (forged(record_count=0, last_offset_delta=0), ErrorCode.INVALID_RECORD),
    # lastOffsetDelta against the count and the records' own deltas
    "delta-above-count": (forged(last_offset_delta=5), ErrorCode.INVALID_RECORD),
    "delta-overflow": (forged(last_offset_delta=INT32_MAX), ErrorCode.INVALID_RECORD),
    "record-deltas-swapped": (forged(raw_record(1, b"a") + raw_record(0, b"b")),
                              ErrorCode.INVALID_RECORD),
    "record-deltas-gap": (forged(raw_record(0, b"a") + raw_record(2, b"b")),
                          ErrorCode.INVALID_RECORD),
    # records cut short, or lying about their own length
    "truncated-record": (forged(GOOD_PAYLOAD[:-3]), ErrorCode.INVALID_RECORD),
    "record-length-long": (forged(raw_record(0, b"a", length_error=1) + TWO[1]),
                           ErrorCode.INVALID_RECORD),
    "record-length-short": (forged(raw_record(0, b"a", length_error=-1) + TWO[1]),
                            ErrorCode.INVALID_RECORD),
    "trailing-bytes": (forged(GOOD_PAYLOAD + b"\x00\x00"), ErrorCode.INVALID_RECORD),
    # what only a broker may write; a transaction needs a producer id (whether the producer's
    # transaction includes the partition is the coordinator's check, not the log's)
    "control": (forged(attributes=0x20), ErrorCode.INVALID_RECORD),
    "transactional-no-producer": (forged(attributes=0x10), ErrorCode.INVALID_RECORD),
    # Kafka's other client rules: offsets are the broker's, a producer id needs a sequence
    "base-offset": (forged(base_offset=7), ErrorCode.INVALID_RECORD),
    "producer-id-no-sequence": (forged(producer_id=4242, producer_epoch=0, base_sequence=-1),
                                ErrorCode.INVALID_RECORD),
}


def produce(raw: RawClient, topic: str, batch: bytes) -> object:
    return raw.request(produce_request(topic, batch))


def base_offset(response: object) -> int:
    return response.responses[0].partition_responses[0].base_offset  # type: ignore[attr-defined]


@pytest.mark.parametrize(("batch", "code"), HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_batch_is_refused_and_nothing_stored(
        broker: InProcessBroker, raw: RawClient, topic: str, batch: bytes, code: int) -> None:
    create_topic(broker.bootstrap, topic)
    assert partition_error(produce(raw, topic, forged())) == 0
    assert partition_error(produce(raw, topic, batch)) == code
    assert high_watermark(broker, topic) == 2
    good = produce(raw, topic, forged())
    assert (partition_error(good), base_offset(good)) == (0, 2)


def test_consumer_reads_the_good_records_around_refused_ones(
        broker: InProcessBroker, raw: RawClient, topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    codes = {}
    for name, (batch, _code) in HOSTILE.items():
        good = forged(raw_record(0, name.encode()) + raw_record(1, b"after " + name.encode()))
        assert partition_error(produce(raw, topic, good)) == 0
        codes[name] = partition_error(produce(raw, topic, batch))
    expected = [v for name in HOSTILE for v in (name.encode(), b"after " + name.encode())]
    assert consume(broker.bootstrap, topic, len(expected)) == list(enumerate(expected))
    assert codes == {name: code for name, (_batch, code) in HOSTILE.items()}


def test_offset_delta_overflow_cannot_brick_the_partition(
        own_broker: InProcessBroker, topic: str) -> None:
    """A batch claiming 2^31 offsets used to move the log end past what the index can hold: the
    partition then acked at reused offsets and did not open again after a restart."""
    own_broker.start()
    create_topic(own_broker.bootstrap, topic)
    raw = RawClient(own_broker.bootstrap)
    try:
        offsets = [base_offset(produce(raw, topic, forged())) for _ in range(3)]
        hostile = forged(raw_record(0, b"x"), record_count=1, last_offset_delta=INT32_MAX)
        assert partition_error(produce(raw, topic, hostile)) == ErrorCode.INVALID_RECORD
        offsets += [base_offset(produce(raw, topic, forged())) for _ in range(3)]
    finally:
        raw.close()
    assert offsets == [0, 2, 4, 6, 8, 10]
    own_broker.restart()
    assert high_watermark(own_broker, topic) == 12
    assert [v for _, v in consume(own_broker.bootstrap, topic, 12)] == [b"a", b"b"] * 6
