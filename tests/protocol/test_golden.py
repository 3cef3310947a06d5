"""Golden bytes, written out from the Kafka protocol guide and message schemas, not computed.

The codec encodes and decodes through kafka-python's generated classes; these frames pin the
bytes, so an upgrade of kafka-python that changes what goes on the wire fails here, loudly.
Each frame is hex, one field a line; requests start after the size, responses include it.
"""

from __future__ import annotations

import pytest

from minikafka.protocol.codec import (
    RESPONSES,
    RequestHeader,
    decode_request,
    encode_response,
    parse_header,
)


def frame(*fields: str) -> bytes:
    return bytes.fromhex("".join(fields))


FIND_COORDINATOR_V0 = frame(
    "000a", "0000", "00000007",  # api key 10, version 0, correlation id 7
    "0003", "636c69",            # client id "cli" (STRING)
    "0002", "6731",              # key "g1" (STRING)
)
FIND_COORDINATOR_V3 = frame(
    "000a", "0003", "00000007",  # api key 10, version 3 (flexible: header v2)
    "0003", "636c69",            # client id stays a STRING in every header version
    "00",                        # header tagged fields: none
    "03", "6731",                # key "g1" (COMPACT_STRING: length + 1)
    "01",                        # key_type 1 (transaction)
    "00",                        # body tagged fields: none
)
METADATA_V1 = frame(
    "0003", "0001", "00000002", "ffff",  # Metadata v1, correlation id 2, null client id
    "00000001", "0001", "74",            # topics: 1 entry, name "t"
)
METADATA_V9 = frame(
    "0003", "0009", "00000002", "ffff", "00",  # Metadata v9, header v2, no tags
    "02", "0274", "00",                        # topics: COMPACT_ARRAY of 1, name "t", tags
    "00",                                      # allow_auto_topic_creation false
    "01",                                      # include_cluster_authorized_operations true
    "00",                                      # include_topic_authorized_operations false
    "00",                                      # tags
)


@pytest.mark.parametrize(("wire", "version", "fields"), [
    (FIND_COORDINATOR_V0, 0, {"key": "g1"}),
    (FIND_COORDINATOR_V3, 3, {"key": "g1", "key_type": 1}),
])
def test_find_coordinator_requests(wire: bytes, version: int, fields: dict[str, object]) -> None:
    header, pos = parse_header(wire)
    assert header == RequestHeader(10, version, 7, "cli")
    request = decode_request(header, wire, pos)
    assert {name: getattr(request, name) for name in fields} == fields


def test_metadata_requests() -> None:
    header, pos = parse_header(METADATA_V1)
    assert header == RequestHeader(3, 1, 2, None)
    assert [t.name for t in decode_request(header, METADATA_V1, pos).topics] == ["t"]

    header, pos = parse_header(METADATA_V9)
    request = decode_request(header, METADATA_V9, pos)
    assert [t.name for t in request.topics] == ["t"]
    assert request.allow_auto_topic_creation is False
    assert request.include_cluster_authorized_operations is True
    assert request.include_topic_authorized_operations is False


@pytest.mark.parametrize(("version", "wire"), [
    (0, frame(
        "00000014",          # size: 20
        "00000005",          # correlation id 5 (response header v0)
        "00000000",          # throttle_time_ms 0
        "0000",              # error_code 0
        "0000000000001000",  # producer_id 4096
        "0003",              # producer_epoch 3
    )),
    (2, frame(
        "00000016",          # size: 22
        "00000005", "00",    # correlation id 5, header tagged fields (response header v1)
        "00000000", "0000", "0000000000001000", "0003",
        "00",                # body tagged fields
    )),
])
def test_init_producer_id_responses(version: int, wire: bytes) -> None:
    cls = RESPONSES[22][version]
    response = cls(throttle_time_ms=0, error_code=0, producer_id=4096, producer_epoch=3)
    assert encode_response(RequestHeader(22, version, 5, None), response) == wire


def test_metadata_v1_response() -> None:
    cls = RESPONSES[3][1]
    response = cls(
        brokers=[cls.MetadataResponseBroker(node_id=0, host="h", port=9092, rack=None)],
        controller_id=0,
        topics=[cls.MetadataResponseTopic(error_code=0, name="t", is_internal=False, partitions=[
            cls.MetadataResponseTopic.MetadataResponsePartition(
                error_code=0, partition_index=0, leader_id=0, replica_nodes=[0], isr_nodes=[0])])])
    assert encode_response(RequestHeader(3, 1, 2, None), response) == frame(
        "00000041", "00000002",                  # size 65, correlation id 2
        "00000001",                              # brokers: 1
        "00000000", "000168", "00002384",        # node 0, host "h", port 9092
        "ffff",                                  # rack null
        "00000000",                              # controller_id 0
        "00000001",                              # topics: 1
        "0000", "000174", "00",                  # error 0, name "t", not internal
        "00000001",                              # partitions: 1
        "0000", "00000000", "00000000",          # error 0, partition 0, leader 0
        "00000001", "00000000",                  # replicas [0]
        "00000001", "00000000",                  # isr [0]
    )


def test_metadata_v9_response() -> None:
    cls = RESPONSES[3][9]
    response = cls(
        throttle_time_ms=0,
        brokers=[cls.MetadataResponseBroker(node_id=0, host="h", port=9092, rack=None)],
        cluster_id="c", controller_id=0,
        topics=[cls.MetadataResponseTopic(
            error_code=0, name="t", is_internal=False,
            partitions=[cls.MetadataResponseTopic.MetadataResponsePartition(
                error_code=0, partition_index=0, leader_id=0, leader_epoch=0,
                replica_nodes=[0], isr_nodes=[0], offline_replicas=[])])])
    assert encode_response(RequestHeader(3, 9, 2, None), response) == frame(
        "00000047", "00000002", "00",            # size 71, correlation id 2, header tags
        "00000000",                              # throttle_time_ms
        "02",                                    # brokers: COMPACT_ARRAY of 1
        "00000000", "0268", "00002384",          # node 0, host "h" (COMPACT), port 9092
        "00", "00",                              # rack null (COMPACT_NULLABLE), tags
        "0263",                                  # cluster_id "c"
        "00000000",                              # controller_id 0
        "02",                                    # topics: 1
        "0000", "0274", "00",                    # error 0, name "t", not internal
        "02",                                    # partitions: 1
        "0000", "00000000", "00000000",          # error 0, partition 0, leader 0
        "00000000",                              # leader_epoch 0
        "02", "00000000",                        # replicas [0]
        "02", "00000000",                        # isr [0]
        "01",                                    # offline_replicas []
        "00",                                    # partition tags
        "80000000",                              # topic authorized operations: not asked
        "00",                                    # topic tags
        "80000000",                              # cluster authorized operations: not asked
        "00",                                    # tags
    )
