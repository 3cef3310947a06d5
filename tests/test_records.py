"""RecordBatch v2: header, CRC-32C, varints, codecs, and interop with kafka-python's encoder."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from minikafka.compression import Compression
from minikafka.errors import CorruptRecordError
from minikafka.records import (
    CRC_START,
    Record,
    assign_offsets,
    decode_batch,
    decode_batches,
    decode_varint,
    encode_batch,
    encode_varint,
    read_header,
    validate_batch,
)

INT64 = st.integers(-(2**63), 2**63 - 1)
NOW = 1_700_000_000_000
names = st.text(max_size=8)
optional_bytes = st.none() | st.binary(max_size=64)
records_st = st.lists(
    st.builds(
        Record,
        value=optional_bytes,
        key=optional_bytes,
        headers=st.lists(st.tuples(names, optional_bytes), max_size=3),
        timestamp=st.none() | st.integers(NOW - 10**6, NOW + 10**6),
    ),
    min_size=1,
    max_size=20,
)
fast = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def records_equal(got: list[Record], sent: list[Record], base_offset: int, now_ms: int) -> None:
    assert len(got) == len(sent)
    for i, (g, s) in enumerate(zip(got, sent, strict=True)):
        assert (g.key, g.value, list(g.headers)) == (s.key, s.value, list(s.headers))
        assert g.timestamp == (now_ms if s.timestamp is None else s.timestamp)
        assert g.offset == base_offset + i


# --- header and CRC -------------------------------------------------------------------------


def test_header_fields_are_at_kafkas_byte_offsets() -> None:
    records = [Record(b"v1", b"k1", timestamp=NOW), Record(b"v2", timestamp=NOW + 5)]
    raw = encode_batch(records, base_offset=7, producer_id=42, producer_epoch=3,
                       base_sequence=9, compression=Compression.NONE)
    assert struct.unpack_from(">q", raw, 0)[0] == 7
    assert struct.unpack_from(">i", raw, 8)[0] == len(raw) - 12
    assert raw[16] == 2  # magic
    assert struct.unpack_from(">h", raw, 21)[0] == 0  # attributes
    assert struct.unpack_from(">i", raw, 23)[0] == 1  # last offset delta
    assert struct.unpack_from(">qq", raw, 27) == (NOW, NOW + 5)
    assert struct.unpack_from(">qhii", raw, 43) == (42, 3, 9, 2)
    header = validate_batch(raw)
    assert header == read_header(raw)
    assert (header.size, header.last_offset, header.next_offset) == (len(raw), 8, 9)


def test_crc_is_castagnoli_over_bytes_21_to_end() -> None:
    from crc32c import crc32c

    raw = encode_batch([Record(b"x" * 50)], now_ms=NOW)
    assert struct.unpack_from(">I", raw, 17)[0] == crc32c(raw[CRC_START:])


def test_validate_rejects_short_wrong_magic_and_overlong_length() -> None:
    raw = bytearray(encode_batch([Record(b"abc")], now_ms=NOW))
    with pytest.raises(CorruptRecordError, match="truncated"):
        validate_batch(raw[:60])
    with pytest.raises(CorruptRecordError, match="length"):
        validate_batch(raw[:-1])
    bad_magic = bytearray(raw)
    bad_magic[16] = 1
    with pytest.raises(CorruptRecordError, match="magic"):
        validate_batch(bad_magic)


def test_empty_batch_is_refused() -> None:
    with pytest.raises(ValueError):
        encode_batch([])


def test_log_append_time_gives_every_record_the_max_timestamp() -> None:
    raw = encode_batch([Record(b"a", timestamp=NOW), Record(b"b", timestamp=NOW + 9)],
                       log_append_time=True)
    assert [r.timestamp for r in decode_batch(raw).records] == [NOW + 9, NOW + 9]


# --- varints --------------------------------------------------------------------------------


@given(INT64)
def test_varint_round_trips_the_whole_int64_range(value: int) -> None:
    raw = encode_varint(value)
    assert decode_varint(raw + b"\xff", 0) == (value, len(raw))
    assert len(raw) <= 10


@pytest.mark.parametrize(("value", "raw"), [
    (0, b"\x00"), (-1, b"\x01"), (1, b"\x02"), (-64, b"\x7f"), (64, b"\x80\x01"),
    (2**63 - 1, b"\xfe" + b"\xff" * 8 + b"\x01"), (-(2**63), b"\xff" * 9 + b"\x01"),
])
def test_varint_is_zigzag_like_kafkas(value: int, raw: bytes) -> None:
    assert encode_varint(value) == raw


def test_varint_longer_than_ten_bytes_is_corrupt() -> None:
    with pytest.raises(CorruptRecordError):
        decode_varint(b"\xff" * 11, 0)


# --- property tests -------------------------------------------------------------------------


@fast
@given(records_st, st.sampled_from(list(Compression)), st.integers(0, 2**40))
def test_every_codec_round_trips(records: list[Record], codec: Compression, base: int) -> None:
    raw = encode_batch(records, base_offset=base, compression=codec, now_ms=NOW)
    batch = decode_batch(raw)
    assert batch.header.compression == codec
    assert batch.header.record_count == len(records)
    records_equal(batch.records, records, base, NOW)


@fast
@given(st.data())
def test_flipping_any_byte_from_21_on_is_detected(data: st.DataObject) -> None:
    raw = bytearray(encode_batch(data.draw(records_st), now_ms=NOW,
                                 compression=data.draw(st.sampled_from(list(Compression)))))
    position = data.draw(st.integers(CRC_START, len(raw) - 1))
    raw[position] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CorruptRecordError):
        validate_batch(raw)


@fast
@given(records_st, st.integers(0, 2**62), st.integers(-1, 2**31 - 1))
def test_assign_offsets_keeps_the_crc_valid(records: list[Record], base: int, epoch: int
                                            ) -> None:
    raw = bytearray(encode_batch(records, now_ms=NOW))
    assign_offsets(raw, base, epoch)
    header = validate_batch(raw)
    assert (header.base_offset, header.partition_leader_epoch) == (base, epoch)
    assert [r.offset for r in decode_batch(raw).records] == list(range(base, base + len(records)))


@fast
@given(st.lists(records_st, min_size=1, max_size=4), st.integers(1, 60))
def test_decode_batches_skips_a_cut_final_batch(batches: list[list[Record]], cut: int) -> None:
    raws = [encode_batch(r, now_ms=NOW) for r in batches]
    whole = b"".join(raws)
    assert [len(b.records) for b in decode_batches(whole)] == [len(r) for r in batches]
    cut_buf = whole[: len(whole) - min(cut, len(raws[-1]))]
    assert [len(b.records) for b in decode_batches(cut_buf)] == [len(r) for r in batches[:-1]]


# --- interop with an independent encoder (kafka-python) ------------------------------------

# kafka-python's codecs here: gzip only (snappy/lz4/zstd need libraries it does not bundle).
INTEROP_CODECS = [Compression.NONE, Compression.GZIP]


def kafka_python_batch(records: list[Record], codec: int, *, producer: tuple[int, int, int]
                       = (-1, -1, -1)) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False,
                                        producer_id=producer[0], producer_epoch=producer[1],
                                        base_sequence=producer[2], batch_size=1 << 30)
    for i, r in enumerate(records):
        builder.append(i, timestamp=r.timestamp, key=r.key, value=r.value,
                       headers=list(r.headers))
    return bytes(builder.build())


with_timestamps = records_st.map(
    lambda rs: [Record(r.value, r.key, r.headers, NOW if r.timestamp is None else r.timestamp)
                for r in rs])


@fast
@given(with_timestamps, st.sampled_from(INTEROP_CODECS))
def test_we_decode_kafka_python_batches(records: list[Record], codec: Compression) -> None:
    raw = kafka_python_batch(records, codec, producer=(5, 1, 100))
    batch = decode_batch(raw)
    assert (batch.header.producer_id, batch.header.producer_epoch,
            batch.header.base_sequence) == (5, 1, 100)
    records_equal(batch.records, records, 0, NOW)


@fast
@given(with_timestamps, st.sampled_from(INTEROP_CODECS), st.integers(0, 2**40))
def test_kafka_python_decodes_our_batches(records: list[Record], codec: Compression, base: int
                                          ) -> None:
    raw = bytearray(encode_batch(records, compression=codec, now_ms=NOW))
    assign_offsets(raw, base)
    theirs = DefaultRecordBatch(bytes(raw))
    assert theirs.validate_crc()
    got = list(theirs)
    assert [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in got] == [
        (base + i, r.timestamp, r.key, r.value, list(r.headers)) for i, r in enumerate(records)
    ]


def test_interop_covers_a_record_too_big_for_the_varint_cache() -> None:
    records = [Record(b"v" * 20_000, b"k" * 17_000, [("h", b"x" * 16_500)], NOW)]
    assert decode_batch(kafka_python_batch(records, 0)).records[0].value == b"v" * 20_000
    got = next(iter(DefaultRecordBatch(encode_batch(records, now_ms=NOW))))
    assert (got.key, got.value) == (records[0].key, records[0].value)
