"""The hand-written Produce codec, byte for byte against kafka-python's schema classes."""

from __future__ import annotations

import pytest
from kafka.protocol.producer import ProduceRequest as SchemaRequest
from kafka.protocol.producer import ProduceResponse as SchemaResponse

from minikafka.errors import ErrorCode
from minikafka.protocol.codec import RequestHeader, parse_header
from minikafka.protocol.primitives import MalformedError
from minikafka.protocol.produce import (
    PartitionResponse,
    decode_produce_request,
    encode_produce_response,
)

BATCH_A, BATCH_B = b"A" * 80, b"B" * 200


def schema_request_frame(version: int, transactional_id: str | None = "tx") -> bytes:
    cls = SchemaRequest[version]
    topic, part = cls.TopicProduceData, cls.TopicProduceData.PartitionProduceData
    request = cls(transactional_id=transactional_id, acks=-1, timeout_ms=1500, topic_data=[
        topic(name="t1", partition_data=[part(index=0, records=BATCH_A),
                                         part(index=3, records=None)]),
        topic(name="t2", partition_data=[part(index=1, records=BATCH_B)])])
    request.with_header(correlation_id=7, client_id="golden")
    return bytes(request.encode(header=True, framed=True))[4:]


@pytest.mark.parametrize("version", range(3, 13))
def test_request_decodes_like_kafka_python(version: int) -> None:
    frame = schema_request_frame(version)
    header, pos = parse_header(frame)
    request = decode_produce_request(header, frame, pos)
    assert (request.transactional_id, request.acks, request.timeout_ms) == ("tx", -1, 1500)
    decoded = [(t.name, [(p.index, None if p.records is None else bytes(p.records))
                         for p in t.partition_data]) for t in request.topic_data]
    assert decoded == [("t1", [(0, BATCH_A), (3, None)]), ("t2", [(1, BATCH_B)])]


def test_records_are_views_into_the_frame() -> None:
    frame = schema_request_frame(9, transactional_id=None)
    header, pos = parse_header(frame)
    request = decode_produce_request(header, frame, pos)
    records = request.topic_data[0].partition_data[0].records
    assert request.transactional_id is None
    assert isinstance(records, memoryview) and records.obj is frame


@pytest.mark.parametrize("version", [3, 9])
def test_truncated_request_is_malformed(version: int) -> None:
    frame = schema_request_frame(version)
    header, pos = parse_header(frame)
    for cut in (pos + 3, len(frame) - 150, len(frame) - 1):
        with pytest.raises(MalformedError):
            decode_produce_request(header, frame[:cut], pos)


@pytest.mark.parametrize("version", range(13))
def test_response_encodes_like_kafka_python(version: int) -> None:
    ours = encode_produce_response(RequestHeader(0, version, 42, None), [
        ("t1", [PartitionResponse(0, 0, 100, -1, 5),
                PartitionResponse(3, ErrorCode.CORRUPT_MESSAGE, error_message="bad crc")]),
        ("t2", [PartitionResponse(1, 0, 7, 1_700_000_000_000, 0)])])

    cls = SchemaResponse[version]
    topic = cls.TopicProduceResponse
    part = topic.PartitionProduceResponse
    expected = cls(throttle_time_ms=0, responses=[
        topic(name="t1", partition_responses=[
            part(index=0, error_code=0, base_offset=100, log_append_time_ms=-1,
                 log_start_offset=5, record_errors=[], error_message=None),
            part(index=3, error_code=ErrorCode.CORRUPT_MESSAGE, base_offset=-1,
                 log_append_time_ms=-1, log_start_offset=-1, record_errors=[],
                 error_message="bad crc")]),
        topic(name="t2", partition_responses=[
            part(index=1, error_code=0, base_offset=7, log_append_time_ms=1_700_000_000_000,
                 log_start_offset=0, record_errors=[], error_message=None)])])
    expected.with_header(correlation_id=42)
    assert ours == bytes(expected.encode(header=True, framed=True))
