"""The hand-written Fetch request decoder against what kafka-python's client-side classes send,
at every version served."""

from __future__ import annotations

import uuid

import pytest
from kafka.protocol.consumer import FetchRequest

from minikafka.protocol.codec import parse_header
from minikafka.protocol.fetch import (
    MAX_VERSION,
    MIN_VERSION,
    TOPIC_IDS_FROM,
    FetchPartition,
    decode_fetch_request,
)
from minikafka.protocol.primitives import MalformedError

IDS = {"a": uuid.UUID(int=7), "b": uuid.UUID(int=2**100 + 9)}
# topic -> [(partition, current leader epoch, fetch offset, max bytes)]
ASKED = {"a": [(0, 3, 2**40, 1 << 20), (5, -1, 0, 7)], "b": [(2, 0, 99, 4096)]}


def framed(version: int) -> bytes:
    cls = FetchRequest[version]
    ids = version >= TOPIC_IDS_FROM
    request = cls(
        replica_id=-1, max_wait_ms=500, min_bytes=3, max_bytes=50 << 20, isolation_level=1,
        session_id=77, session_epoch=4, rack_id="r1",
        topics=[cls.FetchTopic(**({"topic_id": IDS[t]} if ids else {"topic": t}), partitions=[
            cls.FetchTopic.FetchPartition(
                partition=p, current_leader_epoch=epoch, fetch_offset=offset,
                last_fetched_epoch=6, log_start_offset=11, partition_max_bytes=limit)
            for p, epoch, offset, limit in parts]) for t, parts in ASKED.items()],
        forgotten_topics_data=[cls.ForgottenTopic(
            **({"topic_id": IDS["b"]} if ids else {"topic": "b"}), partitions=[1, 4])])
    request.with_header(correlation_id=1, client_id="golden")
    return bytes(request.encode(header=True, framed=True))[4:]


@pytest.mark.parametrize("version", range(MIN_VERSION, MAX_VERSION + 1))
def test_fetch_request_decodes_what_kafka_python_sends(version: int) -> None:
    frame = framed(version)
    header, pos = parse_header(frame)
    request = decode_fetch_request(header, frame, pos)
    ids = version >= TOPIC_IDS_FROM
    assert (request.max_wait_ms, request.min_bytes, request.max_bytes,
            request.isolation_level) == (500, 3, 50 << 20, 1)
    sessions = version >= 7
    assert (request.session_id, request.session_epoch) == ((77, 4) if sessions else (0, -1))
    assert request.partitions == [
        FetchPartition(None if ids else t, IDS[t] if ids else None, p, offset, limit,
                       epoch if version >= 9 else -1)
        for t, parts in ASKED.items() for p, epoch, offset, limit in parts]
    forgotten = IDS["b"] if ids else "b"
    assert request.forgotten == ([(forgotten, 1), (forgotten, 4)] if sessions else [])


@pytest.mark.parametrize("version", [MIN_VERSION, 12, MAX_VERSION])
def test_a_truncated_fetch_request_is_malformed(version: int) -> None:
    frame = framed(version)
    header, pos = parse_header(frame)
    for cut in range(pos, len(frame) - 1, 5):
        with pytest.raises(MalformedError):
            decode_fetch_request(header, frame[:cut], pos)
