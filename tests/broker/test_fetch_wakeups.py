"""Which appends wake a long-polling fetch, over raw frames: only those to a partition it reads,
whichever topic and however many partitions it reads; pipelined polls that time out together
are each answered, in order, no sooner than their max_wait_ms."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from kafka.protocol.admin import CreateTopicsRequest
from kafka.protocol.consumer import FetchRequest
from kafka.protocol.producer import ProduceRequest

from minikafka.records import Record, decode_batches, encode_batch

from .conftest import InProcessBroker, RawClient, create_topic
from .test_bounds import create_topics


@pytest.fixture
def raw(broker: InProcessBroker) -> Iterator[RawClient]:
    client = RawClient(broker.bootstrap)
    yield client
    client.close()


def produce(broker: InProcessBroker, topic: str, partition: int, value: bytes) -> None:
    cls = ProduceRequest[7]
    client = RawClient(broker.bootstrap)
    try:
        response = client.request(cls(transactional_id=None, acks=1, timeout_ms=5000, topic_data=[
            cls.TopicProduceData(name=topic, partition_data=[
                cls.TopicProduceData.PartitionProduceData(
                    index=partition, records=encode_batch([Record(value)]))])]))
    finally:
        client.close()
    assert response.responses[0].partition_responses[0].error_code == 0  # type: ignore[attr-defined]


def poll(topics: dict[str, list[int]], max_wait_ms: int = 10_000) -> object:
    """A fetch of every listed partition from offset 0 (all empty), long-polling."""
    cls = FetchRequest[12]
    return cls(replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=1 << 20,
               isolation_level=0, session_id=0, session_epoch=-1, topics=[cls.FetchTopic(
                   topic=topic, partitions=[cls.FetchTopic.FetchPartition(
                       partition=p, current_leader_epoch=-1, fetch_offset=0,
                       last_fetched_epoch=-1, log_start_offset=-1, partition_max_bytes=1 << 20)
                       for p in partitions]) for topic, partitions in topics.items()],
               forgotten_topics_data=[], rack_id="")


class Waiting:
    """A long poll sent from a thread; `answer` once it is answered."""

    def __init__(self, raw: RawClient, request: object) -> None:
        self.answer: object = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(raw, request))
        self._thread.start()

    def _run(self, raw: RawClient, request: object) -> None:
        self.answer = raw.request(request)
        self.done.set()

    def records(self) -> list[tuple[str, int, bytes | None]]:
        """(topic, partition, value) of each record answered."""
        assert self.done.wait(5), "the long poll was not woken"
        self._thread.join()
        return [(topic.topic, part.partition_index, record.value)
                for topic in self.answer.responses  # type: ignore[attr-defined]
                for part in topic.partitions
                for batch in decode_batches(part.records or b"") for record in batch.records]


@pytest.mark.parametrize("reads", [2, 20], ids=["few", "many"])
def test_only_an_append_to_a_partition_it_reads_wakes_a_long_poll(
        broker: InProcessBroker, raw: RawClient, topic: str, reads: int) -> None:
    """Whether the poll is filed under each partition it reads or once under their topic."""
    create_topic(broker.bootstrap, topic, partitions=reads + 1)
    waiting = Waiting(raw, poll({topic: [p for p in range(reads + 1) if p != 1]}))
    time.sleep(0.2)  # the poll is waiting
    produce(broker, topic, 1, b"elsewhere")
    assert not waiting.done.wait(0.3)
    produce(broker, topic, reads, b"here")
    assert waiting.records() == [(topic, reads, b"here")]


@pytest.mark.parametrize("size", [100, 100_000], ids=["small", "big"])
def test_a_woken_long_poll_answers_with_the_records_whatever_their_size(
        broker: InProcessBroker, raw: RawClient, topic: str, size: int) -> None:
    """Small record slices are read and sent with their answer's bytes, big ones by sendfile."""
    create_topic(broker.bootstrap, topic)
    waiting = Waiting(raw, poll({topic: [0]}))
    time.sleep(0.2)  # the poll is waiting
    produce(broker, topic, 0, b"v" * size)
    assert waiting.records() == [(topic, 0, b"v" * size)]


@pytest.mark.parametrize("woken", ["many", "other"])
def test_a_poll_over_many_partitions_and_topics_wakes_for_any_of_them(
        broker: InProcessBroker, raw: RawClient, topic: str, woken: str) -> None:
    many = create_topic(broker.bootstrap, topic, partitions=40)
    other = create_topic(broker.bootstrap, topic + "-other", partitions=2)
    waiting = Waiting(raw, poll({many: list(range(40)), other: [1]}))
    time.sleep(0.2)  # the poll is waiting
    assert not waiting.done.is_set()
    target = (many, 39) if woken == "many" else (other, 1)
    produce(broker, *target, b"x")
    assert waiting.records() == [(*target, b"x")]


def test_pipelined_polls_that_time_out_are_each_answered_in_order(
        broker: InProcessBroker, raw: RawClient, topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    requests = [poll({topic: [0]}, max_wait_ms=150 + 20 * i) for i in range(5)]
    started = time.monotonic()
    for correlation_id, request in enumerate(requests):
        request.with_header(correlation_id=correlation_id, client_id="raw")  # type: ignore[attr-defined]
        raw.send(request.encode(header=True, framed=True))  # type: ignore[attr-defined]
    for correlation_id, request in enumerate(requests):
        frame = raw.read_frame()
        assert frame is not None
        answer = request.header.get_response_class().decode(  # type: ignore[attr-defined]
            frame, header=True)
        assert answer.header.correlation_id == correlation_id
        assert time.monotonic() - started >= (150 + 20 * correlation_id) / 1000 - 0.005
        assert answer.responses[0].partitions[0].records in (b"", None)


@pytest.mark.parametrize("topics", [{}, {"t": [0]}], ids=["no partition", "a partition"])
def test_shutdown_answers_every_long_poll(own_broker: InProcessBroker,
                                          topics: dict[str, list[int]]) -> None:
    """Even one that reads no partition (an empty incremental fetch) is answered, not dropped
    when the shutdown's grace runs out."""
    own_broker.start()
    if topics:
        create_topic(own_broker.bootstrap, "t")
    raw = RawClient(own_broker.bootstrap)
    try:
        request = poll(topics, max_wait_ms=60_000)
        request.with_header(correlation_id=7, client_id="raw")  # type: ignore[attr-defined]
        raw.send(request.encode(header=True, framed=True))  # type: ignore[attr-defined]
        time.sleep(0.3)  # the poll is waiting
        own_broker.stop()
        assert raw.read_frame() is not None, "the long poll was dropped, not answered"
    finally:
        raw.close()


def test_a_fetch_read_while_the_writer_resumes_reading_is_answered(
        own_broker: InProcessBroker, topic: str) -> None:
    """With one request in flight, the Fetch behind a CreateTopics is read by the writer task
    once that answer is out: the poll must not run in the context the task is in."""
    own_broker.extra = (*own_broker.extra, "--max-in-flight", "1")
    raw = RawClient(own_broker.start().bootstrap)
    try:
        created = create_topics(CreateTopicsRequest[7], [(topic, 1)])
        created.with_header(correlation_id=1, client_id="raw")
        fetch = poll({topic: [0]}, max_wait_ms=50)
        fetch.with_header(correlation_id=2, client_id="raw")  # type: ignore[attr-defined]
        raw.send(bytes(created.encode(header=True, framed=True))
                 + bytes(fetch.encode(header=True, framed=True)))  # type: ignore[attr-defined]
        answers = [raw.read_frame(), raw.read_frame()]
    finally:
        raw.close()
    assert all(answer is not None for answer in answers), own_broker.log()
    assert "cannot enter context" not in own_broker.log()
