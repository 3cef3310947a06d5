"""Broker semantics over the raw protocol: long polls, KIP-74, offsets, idempotence, ordering."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from kafka.protocol.admin import DeleteRecordsRequest
from kafka.protocol.consumer import (
    FetchRequest,
    ListOffsetsRequest,
    OffsetForLeaderEpochRequest,
)
from kafka.protocol.producer import InitProducerIdRequest

from minikafka.errors import ErrorCode
from minikafka.records import Record, decode_batches, encode_batch

from .conftest import InProcessBroker, RawClient, create_topic
from .test_bad_input import partition_error, produce_request


@pytest.fixture
def topic(topic: str, broker: InProcessBroker) -> str:
    """This module's topic exists: its tests produce to it, and Produce creates no topic."""
    return create_topic(broker.bootstrap, topic)


@pytest.fixture
def raw(broker: InProcessBroker) -> Iterator[RawClient]:
    client = RawClient(broker.bootstrap)
    yield client
    client.close()


def produce(raw: RawClient, topic: str, *values: bytes, **batch: int) -> int:
    """Produce one batch; return its base offset."""
    response = raw.request(produce_request(topic, encode_batch([Record(v) for v in values],
                                                               **batch)))
    part = response.responses[0].partition_responses[0]
    assert part.error_code == 0, part
    return part.base_offset


def fetch(raw: RawClient, topic: str, offset: int, *, max_wait_ms: int = 0, min_bytes: int = 1,
          max_bytes: int = 10 << 20, partition_max_bytes: int = 1 << 20, version: int = 12
          ) -> object:
    cls = FetchRequest[version]
    request = cls(replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=min_bytes,
                  max_bytes=max_bytes, isolation_level=0, session_id=0, session_epoch=-1,
                  topics=[cls.FetchTopic(topic=topic, partitions=[cls.FetchTopic.FetchPartition(
                      partition=0, current_leader_epoch=-1, fetch_offset=offset,
                      last_fetched_epoch=-1, log_start_offset=-1,
                      partition_max_bytes=partition_max_bytes)])],
                  forgotten_topics_data=[], rack_id="")
    return raw.request(request).responses[0].partitions[0]  # type: ignore[attr-defined]


def list_offset(raw: RawClient, topic: str, timestamp: int, version: int = 7) -> tuple[int, int]:
    cls = ListOffsetsRequest[version]
    response = raw.request(cls(replica_id=-1, isolation_level=0, timeout_ms=1000,
                               topics=[cls.ListOffsetsTopic(
        name=topic, partitions=[cls.ListOffsetsTopic.ListOffsetsPartition(
            partition_index=0, current_leader_epoch=-1, timestamp=timestamp)])]))
    part = response.topics[0].partitions[0]
    assert part.error_code == 0
    return part.offset, part.timestamp


@pytest.mark.parametrize("version", [4, 12])
def test_fetch_returns_the_containing_batch_with_offsets(raw: RawClient, topic: str,
                                                         version: int) -> None:
    produce(raw, topic, b"a", b"b", b"c")
    produce(raw, topic, b"d")
    part = fetch(raw, topic, 1, version=version)
    assert (part.error_code, part.high_watermark, part.last_stable_offset) == (0, 4, 4)
    assert part.log_start_offset == 0 or version < 5
    records = [(r.offset, r.value) for b in decode_batches(part.records) for r in b.records]
    assert records == [(0, b"a"), (1, b"b"), (2, b"c"), (3, b"d")]


def test_fetch_gives_one_whole_batch_above_max_bytes(raw: RawClient, topic: str) -> None:
    produce(raw, topic, b"x" * 5000)
    produce(raw, topic, b"y" * 5000)
    part = fetch(raw, topic, 0, max_bytes=100, partition_max_bytes=100)
    batches = list(decode_batches(part.records))
    assert [b.records[0].value[:1] for b in batches] == [b"x"]


def test_fetch_out_of_range(raw: RawClient, topic: str) -> None:
    produce(raw, topic, b"a")
    part = fetch(raw, topic, 5)
    assert part.error_code == ErrorCode.OFFSET_OUT_OF_RANGE
    assert part.high_watermark == 1
    assert fetch(raw, "no-such-topic-here", 0).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_long_poll_waits_and_is_woken_by_an_append(broker: InProcessBroker, raw: RawClient,
                                                   topic: str) -> None:
    produce(raw, topic, b"first")
    start = time.monotonic()
    part = fetch(raw, topic, 1, max_wait_ms=300)
    assert time.monotonic() - start >= 0.28
    assert part.records == b""

    def later() -> None:
        time.sleep(0.2)
        other = RawClient(broker.bootstrap)
        produce(other, topic, b"second")
        other.close()

    thread = threading.Thread(target=later)
    start = time.monotonic()
    thread.start()
    part = fetch(raw, topic, 1, max_wait_ms=10_000)
    elapsed = time.monotonic() - start
    thread.join()
    assert 0.15 < elapsed < 5
    assert [r.value for b in decode_batches(part.records) for r in b.records] == [b"second"]


def test_list_offsets(raw: RawClient, topic: str) -> None:
    produce(raw, topic, b"a", b"b")            # timestamps: now
    produce(raw, topic, b"c", now_ms=5_000)    # an old timestamp, appended last
    produce(raw, topic, b"d", now_ms=4_000_000_000_000)
    assert list_offset(raw, topic, -2) == (0, -1)
    assert list_offset(raw, topic, -1) == (4, -1)
    assert list_offset(raw, topic, 4_000_000_000_000) == (3, 4_000_000_000_000)
    assert list_offset(raw, topic, -3) == (3, 4_000_000_000_000)
    assert list_offset(raw, topic, 4_000_000_000_001) == (-1, -1)
    cls = ListOffsetsRequest[0]
    response = raw.request(cls(replica_id=-1, topics=[cls.ListOffsetsTopic(
        name=topic, partitions=[cls.ListOffsetsTopic.ListOffsetsPartition(
            partition_index=0, timestamp=-1, max_num_offsets=1)])]))
    assert response.topics[0].partitions[0].old_style_offsets == [4]


def test_list_offsets_local_and_tiered_specs(raw: RawClient, topic: str) -> None:
    """v8-v10 (KIP-405, KIP-1005): the earliest local offset is the log start (every segment
    is local); no offset is tiered, so the latest tiered one is -1, as Kafka answers without
    remote storage."""
    produce(raw, topic, b"a", b"b")
    assert list_offset(raw, topic, -4, version=10) == (0, -1)
    assert list_offset(raw, topic, -5, version=10) == (-1, -1)


def test_offset_for_leader_epoch_and_delete_records(raw: RawClient, topic: str) -> None:
    produce(raw, topic, b"a", b"b", b"c")
    cls = OffsetForLeaderEpochRequest[4]
    response = raw.request(cls(replica_id=-1, topics=[cls.OffsetForLeaderTopic(
        topic=topic, partitions=[cls.OffsetForLeaderTopic.OffsetForLeaderPartition(
            partition=0, current_leader_epoch=0, leader_epoch=0)])]))
    part = response.topics[0].partitions[0]
    assert (part.error_code, part.leader_epoch, part.end_offset) == (0, 0, 3)

    dr = DeleteRecordsRequest[2]
    response = raw.request(dr(topics=[dr.DeleteRecordsTopic(name=topic, partitions=[
        dr.DeleteRecordsTopic.DeleteRecordsPartition(partition_index=0, offset=2)])],
        timeout_ms=1000))
    assert response.topics[0].partitions[0].low_watermark == 2
    assert list_offset(raw, topic, -2) == (2, -1)
    assert fetch(raw, topic, 0).error_code == ErrorCode.OFFSET_OUT_OF_RANGE


def test_idempotent_sequences(raw: RawClient, topic: str) -> None:
    init = raw.request(InitProducerIdRequest[4](transactional_id=None, transaction_timeout_ms=1,
                                                producer_id=-1, producer_epoch=-1))
    pid = init.producer_id
    assert init.error_code == 0 and pid >= 0
    again = raw.request(InitProducerIdRequest[0](transactional_id=None, transaction_timeout_ms=1))
    assert again.producer_id != pid

    def send(seq: int, *values: bytes) -> object:
        batch = encode_batch([Record(v) for v in values], producer_id=pid, producer_epoch=0,
                             base_sequence=seq)
        return raw.request(produce_request(topic, batch)).responses[0].partition_responses[0]

    assert send(0, b"a", b"b").base_offset == 0
    assert send(2, b"c").base_offset == 2
    duplicate = send(0, b"a", b"b")
    assert (duplicate.error_code, duplicate.base_offset) == (0, 0)
    assert send(9, b"gap").error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert list_offset(raw, topic, -1) == (3, -1)


def test_pipelined_requests_are_answered_in_order(broker: InProcessBroker, topic: str) -> None:
    raw = RawClient(broker.bootstrap)
    produce(raw, topic, b"seed")
    # A long poll first, then quick requests: answers must still come in request order.
    frames = []
    cls = FetchRequest[12]
    poll = cls(replica_id=-1, max_wait_ms=300, min_bytes=1 << 20, max_bytes=1 << 20,
               isolation_level=0, session_id=0, session_epoch=-1, topics=[cls.FetchTopic(
                   topic=topic, partitions=[cls.FetchTopic.FetchPartition(
                       partition=0, current_leader_epoch=-1, fetch_offset=1,
                       last_fetched_epoch=-1, log_start_offset=-1, partition_max_bytes=1000)])],
               forgotten_topics_data=[], rack_id="")
    poll.with_header(correlation_id=1, client_id="raw")
    frames.append(poll.encode(header=True, framed=True))
    for cid in range(2, 12):
        req = produce_request(topic, encode_batch([Record(b"%d" % cid)]))
        req.with_header(correlation_id=cid, client_id="raw")  # type: ignore[attr-defined]
        frames.append(req.encode(header=True, framed=True))  # type: ignore[attr-defined]
    raw.send(b"".join(frames))
    order = []
    for _ in frames:
        frame = raw.read_frame()
        assert frame is not None
        order.append(struct.unpack_from(">i", frame)[0])
    raw.close()
    assert order == list(range(1, 12))


def test_a_stalled_client_does_not_block_others(broker: InProcessBroker, topic: str) -> None:
    raw = RawClient(broker.bootstrap)
    produce(raw, topic, b"z" * 900_000)
    stalled = socket.create_connection(("127.0.0.1", broker.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    cls = FetchRequest[12]
    req = cls(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=50 << 20, isolation_level=0,
              session_id=0, session_epoch=-1, topics=[cls.FetchTopic(topic=topic, partitions=[
                  cls.FetchTopic.FetchPartition(partition=0, current_leader_epoch=-1,
                                                fetch_offset=0, last_fetched_epoch=-1,
                                                log_start_offset=-1,
                                                partition_max_bytes=1 << 20)])],
              forgotten_topics_data=[], rack_id="")
    req.with_header(correlation_id=1, client_id="stalled")
    stalled.sendall(req.encode(header=True, framed=True) * 30)  # never read: ~27 MB pending
    time.sleep(0.3)
    start = time.monotonic()
    for _ in range(20):
        assert partition_error(raw.request(produce_request(topic, encode_batch(
            [Record(b"x")])))) == 0
        assert fetch(raw, topic, 1).error_code == 0
    assert time.monotonic() - start < 5
    stalled.close()
    raw.close()


def test_auto_create_can_be_disabled(own_broker: InProcessBroker) -> None:
    own_broker.extra = ("--no-auto-create-topics",)
    own_broker.start()
    raw = RawClient(own_broker.bootstrap)
    response = raw.request(produce_request("nope", encode_batch([Record(b"x")])))
    assert partition_error(response) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    raw.close()
