"""Requests answered at once (Produce acks<=1, ApiVersions, Metadata creating nothing) and those
that wait (acks=all, long polls) share one connection: answers leave in request order, and
appends happen in the order the requests were sent, whichever way each is run."""

from __future__ import annotations

import struct
from typing import Any

from kafka.protocol.consumer import FetchRequest
from kafka.protocol.metadata import ApiVersionsRequest, MetadataRequest

from minikafka.records import Record, decode_batches, encode_batch

from .conftest import InProcessBroker, RawClient, create_topic
from .test_bad_input import produce_request
from .test_semantics import fetch


def _frame(request: Any, correlation_id: int) -> bytes:
    request.with_header(correlation_id=correlation_id, client_id="raw")
    return bytes(request.encode(header=True, framed=True))


def _answers(raw: RawClient, count: int) -> list[tuple[int, bytes]]:
    """(correlation id, body) of the next `count` answers."""
    out = []
    for _ in range(count):
        frame = raw.read_frame()
        assert frame is not None, "connection closed instead of answering"
        out.append((struct.unpack_from(">i", frame)[0], frame))
    return out


def test_mixed_acks_append_in_sent_order(broker: InProcessBroker, topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    raw = RawClient(broker.bootstrap)
    acks = [-1, 1, -1, 1, 0, 1, -1, 0, 1]
    raw.send(b"".join(_frame(produce_request(topic, encode_batch([Record(b"%d" % i)]), acks=a),
                             i) for i, a in enumerate(acks)))
    answered = [i for i, a in enumerate(acks) if a != 0]  # acks=0 is never answered
    assert [cid for cid, _ in _answers(raw, len(answered))] == answered
    found: Any = fetch(raw, topic, 0)
    values = [r.value for b in decode_batches(found.records)
              for r in b.records]
    assert values == [b"%d" % i for i in range(len(acks))]
    raw.close()


def test_quick_answers_wait_behind_a_long_poll(broker: InProcessBroker, topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    raw = RawClient(broker.bootstrap)
    cls = FetchRequest[12]
    poll = cls(replica_id=-1, max_wait_ms=5000, min_bytes=1, max_bytes=1 << 20,
               isolation_level=0, session_id=0, session_epoch=-1, topics=[cls.FetchTopic(
                   topic=topic, partitions=[cls.FetchTopic.FetchPartition(
                       partition=0, current_leader_epoch=-1, fetch_offset=0,
                       last_fetched_epoch=-1, log_start_offset=-1, partition_max_bytes=1000)])],
               forgotten_topics_data=[], rack_id="")
    raw.send(_frame(poll, 1) + _frame(ApiVersionsRequest[3](
        client_software_name="raw", client_software_version="1"), 2)
        + _frame(MetadataRequest[9](topics=None, allow_auto_topic_creation=False,
                                    include_cluster_authorized_operations=False,
                                    include_topic_authorized_operations=False), 3)
        + _frame(produce_request(topic, encode_batch([Record(b"wake")])), 4))
    # The produce, answered at once, wakes the long poll ahead of it; its answer still waits.
    answers = _answers(raw, 4)
    assert [cid for cid, _ in answers] == [1, 2, 3, 4]
    assert b"wake" in answers[0][1]
    raw.close()
