"""Bad input: Kafka's error where the protocol has one, else only that connection is closed.

Each case also checks that nothing was written and that the broker still serves a good client.
"""

from __future__ import annotations

import struct

import pytest
from kafka.protocol.admin import CreatePartitionsRequest, CreateTopicsRequest
from kafka.protocol.metadata import ApiVersionsRequest, MetadataRequest
from kafka.protocol.producer import ProduceRequest

from minikafka.errors import ErrorCode
from minikafka.records import Record, encode_batch

from .conftest import InProcessBroker, RawClient, create_topic


@pytest.fixture
def topic(topic: str, broker: InProcessBroker) -> str:
    """This module's topic exists: its tests produce to it, and Produce creates no topic."""
    return create_topic(broker.bootstrap, topic)


def still_serving(broker: InProcessBroker) -> None:
    client = RawClient(broker.bootstrap)
    try:
        response = client.request(ApiVersionsRequest[0]())
        assert response.error_code == 0
    finally:
        client.close()


def produce_request(topic: str, records: bytes | None, acks: int = 1, version: int = 7) -> object:
    cls = ProduceRequest[version]
    return cls(transactional_id=None, acks=acks, timeout_ms=5000, topic_data=[
        cls.TopicProduceData(name=topic, partition_data=[
            cls.TopicProduceData.PartitionProduceData(index=0, records=records)])])


def partition_error(response: object) -> int:
    return response.responses[0].partition_responses[0].error_code  # type: ignore[attr-defined]


def high_watermark(broker: InProcessBroker, topic: str) -> int:
    from kafka.protocol.consumer import ListOffsetsRequest

    client = RawClient(broker.bootstrap)
    try:
        cls = ListOffsetsRequest[1]
        response = client.request(cls(replica_id=-1, topics=[cls.ListOffsetsTopic(
            name=topic, partitions=[cls.ListOffsetsTopic.ListOffsetsPartition(
                partition_index=0, timestamp=-1)])]))
        part = response.topics[0].partitions[0]
        return part.offset if part.error_code == 0 else -1
    finally:
        client.close()


@pytest.mark.parametrize("payload", [
    struct.pack(">i", 200 * 1024 * 1024),             # over socket.request.max.bytes (100 MiB)
    struct.pack(">i", -5),                            # negative size
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",             # not Kafka at all
    struct.pack(">i", 3) + b"abc",                    # frame shorter than a request header
    struct.pack(">ihhih", 12, 3, 1, 7, 50) + b"ab",   # client id runs past the frame
    struct.pack(">ihhih", 10, 999, 0, 7, -1),          # unknown API key
    struct.pack(">ihhih", 10, 3, 99, 7, -1),           # Metadata version we do not serve
    struct.pack(">ihhih", 14, 3, 1, 7, -1) + b"\x00\x00\x00\x05",  # body truncated
], ids=["oversized", "negative", "http", "short", "client-id", "api-key", "version", "body"])
def test_protocol_violations_close_only_that_connection(
        broker: InProcessBroker, raw: RawClient, payload: bytes) -> None:
    raw.send(payload)
    assert raw.read_frame() is None
    still_serving(broker)


def test_truncated_frame_then_eof(broker: InProcessBroker, raw: RawClient) -> None:
    raw.send(struct.pack(">i", 100) + b"\x00\x03")
    raw.sock.shutdown(1)
    assert raw.read_frame() is None
    still_serving(broker)


def test_api_versions_above_ours_gets_v0_error_and_our_ranges(raw: RawClient) -> None:
    raw.send(struct.pack(">ihhih", 10, 18, 99, 42, -1))
    frame = raw.read_frame()
    assert frame is not None
    correlation_id, error, count = struct.unpack_from(">ihi", frame)
    assert (correlation_id, error) == (42, ErrorCode.UNSUPPORTED_VERSION)
    ranges = {k: (lo, hi) for k, lo, hi in struct.iter_unpack(">hhh", frame[10:10 + 6 * count])}
    assert ranges[18] == (0, 4) and ranges[0] == (0, 12) and ranges[1] == (4, 17)


def test_bad_crc_is_corrupt_message(broker: InProcessBroker, raw: RawClient, topic: str) -> None:
    batch = bytearray(encode_batch([Record(b"value")]))
    batch[-1] ^= 0xFF
    assert partition_error(raw.request(produce_request(topic, bytes(batch)))) == \
        ErrorCode.CORRUPT_MESSAGE
    assert high_watermark(broker, topic) == 0


@pytest.mark.parametrize(("records", "code"), [
    (encode_batch([Record(b"x")])[:40], ErrorCode.CORRUPT_MESSAGE),       # truncated header
    (encode_batch([Record(b"x")])[:-3], ErrorCode.CORRUPT_MESSAGE),       # truncated batch
    (encode_batch([Record(b"x")]) * 2, ErrorCode.INVALID_RECORD),         # two batches
    (None, ErrorCode.INVALID_RECORD),                                     # no records
], ids=["header", "batch", "two-batches", "null"])
def test_bad_batches_are_refused(broker: InProcessBroker, raw: RawClient, topic: str,
                                 records: bytes | None, code: int) -> None:
    assert partition_error(raw.request(produce_request(topic, records))) == code
    assert high_watermark(broker, topic) == 0


def test_bad_magic_is_invalid_record(broker: InProcessBroker, raw: RawClient, topic: str) -> None:
    batch = bytearray(encode_batch([Record(b"x")]))
    batch[16] = 1
    assert partition_error(raw.request(produce_request(topic, bytes(batch)))) == \
        ErrorCode.INVALID_RECORD


def test_invalid_topic_name_on_produce(raw: RawClient) -> None:
    response = raw.request(produce_request("no/slashes", encode_batch([Record(b"x")])))
    assert partition_error(response) == ErrorCode.INVALID_TOPIC_EXCEPTION


def test_invalid_acks(raw: RawClient, topic: str) -> None:
    response = raw.request(produce_request(topic, encode_batch([Record(b"x")]), acks=2))
    assert partition_error(response) == ErrorCode.INVALID_REQUIRED_ACKS


def test_old_produce_versions_are_unsupported(raw: RawClient, topic: str) -> None:
    response = raw.request(produce_request(topic, encode_batch([Record(b"x")]), version=2))
    assert partition_error(response) == ErrorCode.UNSUPPORTED_VERSION


def test_acks0_error_closes_the_connection(broker: InProcessBroker, raw: RawClient) -> None:
    request = produce_request("bad name", encode_batch([Record(b"x")]), acks=0)
    request.with_header(correlation_id=1, client_id="raw")  # type: ignore[attr-defined]
    raw.send(request.encode(header=True, framed=True))  # type: ignore[attr-defined]
    assert raw.is_closed()
    still_serving(broker)


def test_create_topics_errors(broker: InProcessBroker, raw: RawClient, topic: str) -> None:
    cls = CreateTopicsRequest[7]

    def creatable(name: str, partitions: int, replication: int = 1) -> object:
        return cls.CreatableTopic(name=name, num_partitions=partitions,
                                  replication_factor=replication, assignments=[], configs=[])

    response = raw.request(cls(topics=[
        creatable(topic + "-neg", -5), creatable(topic + "-zero", 0),
        creatable("bad name", 1), creatable("x" * 250, 1), creatable(topic + "-rf", 1, 2),
        creatable(topic + "-ok", 2),
    ], timeout_ms=1000, validate_only=False))
    codes = [t.error_code for t in response.topics]
    assert codes == [ErrorCode.INVALID_PARTITIONS, ErrorCode.INVALID_PARTITIONS,
                     ErrorCode.INVALID_TOPIC_EXCEPTION, ErrorCode.INVALID_TOPIC_EXCEPTION,
                     ErrorCode.INVALID_REPLICATION_FACTOR, 0]
    assert response.topics[-1].num_partitions == 2
    metadata = raw.request(MetadataRequest[1](topics=None))
    names = {t.name for t in metadata.topics}
    assert topic + "-ok" in names
    assert not names & {topic + "-neg", topic + "-zero", topic + "-rf", "bad name"}

    cp = CreatePartitionsRequest[3]
    response = raw.request(cp(topics=[cp.CreatePartitionsTopic(name=topic + "-ok", count=1,
                                                               assignments=None)],
                              timeout_ms=1000, validate_only=False))
    assert response.results[0].error_code == ErrorCode.INVALID_PARTITIONS


def test_invalid_topic_name_on_metadata(raw: RawClient) -> None:
    cls = MetadataRequest[12]
    response = raw.request(cls(topics=[cls.MetadataRequestTopic(topic_id=None, name="bad name")],
                               allow_auto_topic_creation=True,
                               include_topic_authorized_operations=False))
    assert response.topics[0].error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
