"""Golden bytes for the codec: hand-built with struct, or from kafka-python's client-side path.

The served version table comes from the broker's registry, so every API is checked at its lowest
and highest served version.
"""

from __future__ import annotations

import struct

import pytest
from kafka.protocol.consumer import FetchResponse
from kafka.protocol.metadata import ApiVersionsResponse, MetadataRequest, MetadataResponse
from kafka.protocol.producer import ProduceResponse

from minikafka.broker.handlers import build_registry
from minikafka.errors import ErrorCode
from minikafka.protocol.codec import (
    REQUESTS,
    RESPONSES,
    RequestHeader,
    decode_request,
    encode_response,
    parse_header,
    unsupported_api_versions,
)
from minikafka.protocol.fetch import PartitionData, TopicData, encode_fetch_response
from minikafka.protocol.primitives import MalformedError

SERVED = {key: (api.min_version, api.max_version) for key, api in build_registry().items()}
EDGES = sorted({(k, v) for k, (lo, hi) in SERVED.items() for v in (lo, hi)})


def test_served_versions_match_the_issues() -> None:
    assert SERVED == {18: (0, 4), 3: (0, 13), 0: (0, 12), 1: (4, 17), 2: (0, 10), 19: (0, 7),
                      20: (0, 6), 37: (0, 3), 21: (0, 2), 32: (0, 4), 33: (0, 2), 44: (0, 1),
                      60: (0, 1), 23: (2, 4),
                      # consumer groups (issue 4)
                      8: (0, 8), 9: (0, 8), 10: (0, 4), 11: (0, 9), 12: (0, 4), 13: (0, 5),
                      14: (0, 5), 15: (0, 5), 16: (0, 4), 42: (0, 2), 47: (0, 0),
                      # client quotas (issue 11)
                      48: (0, 1), 49: (0, 1),
                      # transactions (issue 12): the coordinator's side, then the log's
                      22: (0, 5), 24: (0, 3), 25: (0, 4), 26: (0, 4), 28: (0, 4), 65: (0, 0),
                      66: (0, 2), 61: (0, 0),
                      # SASL and SCRAM users (issue 17)
                      17: (0, 1), 36: (0, 2), 50: (0, 0), 51: (0, 0),
                      # ACLs (issue 17)
                      29: (0, 3), 30: (0, 3), 31: (0, 3)}


def test_request_header_v1_by_hand() -> None:
    frame = struct.pack(">hhih", 3, 1, 77, 6) + b"client" + struct.pack(">i", -1)
    header, pos = parse_header(frame)
    assert header == RequestHeader(3, 1, 77, "client") and pos == 16
    request = decode_request(header, frame, pos)
    assert request.topics is None


def test_request_header_v2_skips_tagged_fields() -> None:
    # Metadata v12: header v2 with one tagged field (tag 5, 2 bytes), then the body.
    body = b"\x00" + b"\x01" + b"\x00" + b"\x00"  # topics=null, allow_auto=1, incl_ops=0, tags
    frame = struct.pack(">hhih", 3, 12, 5, -1) + b"\x01\x05\x02xy" + body
    header, pos = parse_header(frame)
    assert header == RequestHeader(3, 12, 5, None) and frame[pos:] == body
    request = decode_request(header, frame, pos)
    assert request.topics is None and request.allow_auto_topic_creation is True


@pytest.mark.parametrize("frame", [b"\x00\x03", struct.pack(">hhih", 3, 1, 1, 9) + b"abc",
                                   struct.pack(">hhih", 3, 1, 1, -7)])
def test_bad_headers_are_malformed(frame: bytes) -> None:
    with pytest.raises(MalformedError):
        parse_header(frame)


def test_api_versions_v0_response_by_hand() -> None:
    header = RequestHeader(18, 0, 9, "c")
    response = ApiVersionsResponse[0](error_code=0, api_keys=[
        ApiVersionsResponse.ApiVersion(api_key=0, min_version=0, max_version=9)])
    body = struct.pack(">ihi", 9, 0, 1) + struct.pack(">hhh", 0, 0, 9)
    assert encode_response(header, response) == struct.pack(">i", len(body)) + body


def test_api_versions_v3_response_header_has_no_tags() -> None:
    header = RequestHeader(18, 3, 9, "c")
    response = ApiVersionsResponse[3](error_code=0, throttle_time_ms=0, api_keys=[
        ApiVersionsResponse.ApiVersion(api_key=1, min_version=4, max_version=12)])
    # correlation id, then (no header tags) error, compact array of 1, entry + tags, throttle, tags
    body = struct.pack(">ih", 9, 0) + b"\x02" + struct.pack(">hhh", 1, 4, 12) + b"\x00" + \
        struct.pack(">i", 0) + b"\x00"
    assert encode_response(header, response) == struct.pack(">i", len(body)) + body


def test_api_versions_above_ours_is_a_v0_error() -> None:
    frame = unsupported_api_versions(RequestHeader(18, 9, 4, None), {18: (0, 4), 3: (0, 12)})
    body = struct.pack(">ihi", 4, ErrorCode.UNSUPPORTED_VERSION, 2) + \
        struct.pack(">hhhhhh", 3, 0, 12, 18, 0, 4)
    assert frame == struct.pack(">i", len(body)) + body


def test_produce_v9_response_by_hand() -> None:
    cls = ProduceResponse[9]
    response = cls(throttle_time_ms=0, responses=[cls.TopicProduceResponse(
        name="t", partition_responses=[cls.TopicProduceResponse.PartitionProduceResponse(
            index=0, error_code=0, base_offset=42, log_append_time_ms=-1, log_start_offset=0,
            record_errors=[], error_message=None)])])
    body = (struct.pack(">i", 3) + b"\x00"          # correlation id, header tags
            + b"\x02" + b"\x02t"                    # 1 topic, compact name
            + b"\x02" + struct.pack(">ihqqq", 0, 0, 42, -1, 0)
            + b"\x01" + b"\x00" + b"\x00"           # record_errors [], error_message null, tags
            + b"\x00"                               # topic tags
            + struct.pack(">i", 0) + b"\x00")       # throttle, tags
    assert encode_response(RequestHeader(0, 9, 3, None), response) == \
        struct.pack(">i", len(body)) + body


def test_metadata_v0_response_by_hand() -> None:
    cls = MetadataResponse[0]
    response = cls(brokers=[cls.MetadataResponseBroker(node_id=0, host="h", port=9092)], topics=[
        cls.MetadataResponseTopic(error_code=3, name="x", partitions=[])])
    body = (struct.pack(">i", 1) + struct.pack(">i", 1) + struct.pack(">ih", 0, 1) + b"h"
            + struct.pack(">i", 9092) + struct.pack(">i", 1) + struct.pack(">hh", 3, 1) + b"x"
            + struct.pack(">i", 0))
    assert encode_response(RequestHeader(3, 0, 1, None), response) == \
        struct.pack(">i", len(body)) + body


@pytest.mark.parametrize(("key", "version"), EDGES)
def test_every_request_decodes_what_kafka_python_sends(key: int, version: int) -> None:
    request = REQUESTS[key][version]()
    if key == 3 and version == 0:
        request = MetadataRequest[0](topics=[])
    request.with_header(correlation_id=123, client_id="golden")
    frame = bytes(request.encode(header=True, framed=True))[4:]
    header, pos = parse_header(frame)
    assert header == RequestHeader(key, version, 123, "golden")
    decoded = decode_request(header, frame, pos)
    assert decoded.to_dict() == REQUESTS[key].decode(frame[pos:], version=version).to_dict()


@pytest.mark.parametrize(("key", "version"), [e for e in EDGES if e[0] != 1])
def test_every_response_frames_like_kafka_python(key: int, version: int) -> None:
    reference = RESPONSES[key][version]()
    reference.with_header(correlation_id=77)
    expected = bytes(reference.encode(header=True, framed=True))
    ours = encode_response(RequestHeader(key, version, 77, None), RESPONSES[key][version]())
    assert ours == expected


class FakeSlice:
    """Stands in for a FileSlice: the encoder only needs its length."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.length = len(data)


@pytest.mark.parametrize("version", [4, 5, 7, 11, 12])
def test_fetch_response_matches_kafka_python(version: int) -> None:
    records_a, records_b = b"A" * 70, b"B" * 130
    ours = encode_fetch_response(RequestHeader(1, version, 55, None), [
        TopicData("t1", [
            PartitionData(0, 0, 10, 10, 2, None, FakeSlice(records_a)),
            PartitionData(1, ErrorCode.OFFSET_OUT_OF_RANGE, 5, 5, 0, [], b""),
        ]),
        TopicData("t2", [PartitionData(3, 0, 7, 7, 0, [(9, 4)], FakeSlice(records_b))]),
    ], session_id=0)
    wire = b"".join(p if isinstance(p, bytes) else p.data for p in ours)

    cls = FetchResponse[version]
    topic_cls = cls.FetchableTopicResponse
    part_cls = topic_cls.PartitionData
    aborted = part_cls.AbortedTransaction
    expected = cls(throttle_time_ms=0, error_code=0, session_id=0, responses=[
        topic_cls(topic="t1", partitions=[
            part_cls(partition_index=0, error_code=0, high_watermark=10, last_stable_offset=10,
                     log_start_offset=2, aborted_transactions=None, preferred_read_replica=-1,
                     records=records_a),
            part_cls(partition_index=1, error_code=1, high_watermark=5, last_stable_offset=5,
                     log_start_offset=0, aborted_transactions=[], preferred_read_replica=-1,
                     records=b"")]),
        topic_cls(topic="t2", partitions=[
            part_cls(partition_index=3, error_code=0, high_watermark=7, last_stable_offset=7,
                     log_start_offset=0, preferred_read_replica=-1, records=records_b,
                     aborted_transactions=[aborted(producer_id=9, first_offset=4)])])])
    expected.with_header(correlation_id=55)
    assert wire == bytes(expected.encode(header=True, framed=True))
    assert not isinstance(ours[1], bytes)  # the records stay a slice, not bytes
