"""Transactions with real clients against a real broker (issue 12): confluent-kafka's and
aiokafka's transactional producers, read_committed consumers, offsets committed in a
transaction, a zombie fenced, a transaction that times out, the admin APIs, restarts."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable, Iterator

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka import TopicPartition as AioTopicPartition
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from kafka import KafkaProducer, OffsetAndMetadata
from kafka import TopicPartition as KafkaTopicPartition
from kafka.protocol.admin.transactions import (
    DescribeTransactionsRequest,
    ListTransactionsRequest,
)
from kafka.protocol.consumer import OffsetFetchRequest
from kafka.protocol.producer import (
    AddPartitionsToTxnRequest,
    EndTxnRequest,
    InitProducerIdRequest,
    TxnOffsetCommitRequest,
)

from diskkit import PAGE, SmallDisk, small_disk
from minikafka.errors import ErrorCode
from minikafka.records import encode_batch

from .conftest import InProcessBroker, RawClient, create_topic
from .test_bad_input import partition_error, produce_request
from .test_disk_full import disk_broker

__all__ = ["disk_broker", "small_disk"]  # fixtures

LOCAL_FENCED = -144  # librdkafka's error for PRODUCER_FENCED: "fenced by a newer instance"
FAST = {"fetch.wait.max.ms": 50, "enable.auto.commit": False, "enable.partition.eof": True}


def transactional(bootstrap: str, transactional_id: str, **config: object) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                         "linger.ms": 5, **config})
    producer.init_transactions(30)
    return producer


def open_transaction(bootstrap: str, transactional_id: str, topic: str, value: bytes = b"x",
                     partition: int = 0, **config: object) -> Producer:
    """A transactional producer whose open transaction has `value` on the broker."""
    producer = transactional(bootstrap, transactional_id, **config)
    producer.begin_transaction()
    producer.produce(topic, value, partition=partition)
    producer.flush(10)
    return producer


def read_all(bootstrap: str, topic: str, isolation: str, partitions: int = 1,
             group: str = "reader") -> list[bytes]:
    """Every record a consumer with `isolation` sees, up to the end of each partition."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "isolation.level": isolation, **FAST})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got: list[bytes] = []
    ended: set[int] = set()
    deadline = time.monotonic() + 20
    try:
        while len(ended) < partitions:
            assert time.monotonic() < deadline, f"no end of partitions after {got}"
            msg = consumer.poll(1)
            if msg is None:
                continue
            if msg.error():
                assert msg.error().code() == -191, msg.error()  # partition EOF
                ended.add(msg.partition())
                continue
            ended.discard(msg.partition())
            got.append(msg.value())
    finally:
        consumer.close()
    return got


def describe(bootstrap: str, transactional_id: str) -> object:
    client = RawClient(bootstrap)
    try:
        response = client.request(DescribeTransactionsRequest[0](
            transactional_ids=[transactional_id]))
    finally:
        client.close()
    return response.transaction_states[0]  # type: ignore[attr-defined]


def wait_for_state(bootstrap: str, transactional_id: str, state: str, seconds: float = 10
                   ) -> object:
    deadline = time.monotonic() + seconds
    while True:
        found = describe(bootstrap, transactional_id)
        if found.transaction_state == state or time.monotonic() > deadline:  # type: ignore
            return found
        time.sleep(0.05)


@pytest.fixture
def two_partitions(broker: InProcessBroker, topic: str) -> Iterator[str]:
    yield create_topic(broker.bootstrap, topic, partitions=2)


def test_commit_and_abort_with_read_committed(broker: InProcessBroker, two_partitions: str
                                              ) -> None:
    topic = two_partitions
    producer = transactional(broker.bootstrap, f"{topic}-tx")
    for round_, commit in enumerate((True, False, True)):
        producer.begin_transaction()
        for i in range(10):
            producer.produce(topic, b"%d-%d" % (round_, i), partition=i % 2)
        producer.flush(10)  # an abort drops what is not sent yet
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)
    committed = sorted(b"%d-%d" % (r, i) for r in (0, 2) for i in range(10))
    assert sorted(read_all(broker.bootstrap, topic, "read_committed", 2)) == committed
    # read_uncommitted sees the aborted records too, and neither sees the markers
    everything = sorted(b"%d-%d" % (r, i) for r in range(3) for i in range(10))
    assert sorted(read_all(broker.bootstrap, topic, "read_uncommitted", 2)) == everything
    found = describe(broker.bootstrap, f"{topic}-tx")
    assert found.transaction_state == "CompleteCommit"  # type: ignore[attr-defined]


def test_an_open_transaction_is_invisible_to_read_committed(broker: InProcessBroker, topic: str
                                                            ) -> None:
    create_topic(broker.bootstrap, topic)
    producer = open_transaction(broker.bootstrap, f"{topic}-tx", topic, b"pending")
    assert read_all(broker.bootstrap, topic, "read_committed") == []
    assert read_all(broker.bootstrap, topic, "read_uncommitted") == [b"pending"]
    found = describe(broker.bootstrap, f"{topic}-tx")
    assert found.transaction_state == "Ongoing"  # type: ignore[attr-defined]
    assert [(t.topic, t.partitions) for t in found.topics] == [(topic, [0])]  # type: ignore
    producer.commit_transaction(30)
    assert read_all(broker.bootstrap, topic, "read_committed") == [b"pending"]


def _offset_fetch(bootstrap: str, group: str, topic: str) -> tuple[int, int]:
    """OffsetFetch v7 with require_stable: (error, committed offset) of partition 0."""
    client = RawClient(bootstrap)
    try:
        response = client.request(OffsetFetchRequest[7](
            group_id=group, require_stable=True,
            topics=[OffsetFetchRequest[7].OffsetFetchRequestTopic(
                name=topic, partition_indexes=[0])]))
    finally:
        client.close()
    part = response.topics[0].partitions[0]  # type: ignore[attr-defined]
    return part.error_code, part.committed_offset


def test_offsets_sent_to_a_transaction_appear_only_on_commit(broker: InProcessBroker,
                                                             topic: str) -> None:
    source, sink, group = create_topic(broker.bootstrap, topic), f"{topic}.out", f"{topic}-g"
    create_topic(broker.bootstrap, sink)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, **FAST})
    meta = consumer.consumer_group_metadata()
    producer = transactional(broker.bootstrap, f"{topic}-tx")
    try:
        producer.begin_transaction()
        producer.produce(sink, b"out-1")
        producer.send_offsets_to_transaction([TopicPartition(source, 0, 5)], meta, 30)
        assert _offset_fetch(broker.bootstrap, group, source) == (
            ErrorCode.UNSTABLE_OFFSET_COMMIT, -1)
        producer.commit_transaction(30)
        assert consumer.committed([TopicPartition(source, 0)], 10)[0].offset == 5
        assert _offset_fetch(broker.bootstrap, group, source) == (0, 5)

        producer.begin_transaction()
        producer.produce(sink, b"out-2")
        producer.flush(10)
        producer.send_offsets_to_transaction([TopicPartition(source, 0, 9)], meta, 30)
        producer.abort_transaction(30)
        assert consumer.committed([TopicPartition(source, 0)], 10)[0].offset == 5
    finally:
        consumer.close()
    assert read_all(broker.bootstrap, sink, "read_committed") == [b"out-1"]


def test_offsets_of_a_group_member_are_checked_against_its_generation(
        broker: InProcessBroker, topic: str) -> None:
    """KIP-447: send_offsets_to_transaction with a subscribed consumer's group metadata carries
    its member id and generation, which the group coordinator checks as for OffsetCommit."""
    create_topic(broker.bootstrap, topic)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    plain.produce(topic, b"in")
    plain.flush(10)
    group = f"{topic}-g"
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", **FAST})
    consumer.subscribe([topic])
    producer = transactional(broker.bootstrap, f"{topic}-tx")
    try:
        deadline = time.monotonic() + 20
        while (msg := consumer.poll(0.5)) is None or msg.error():
            assert time.monotonic() < deadline, "no assignment"
        producer.begin_transaction()
        producer.send_offsets_to_transaction([TopicPartition(topic, 0, msg.offset() + 1)],
                                             consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
        assert consumer.committed([TopicPartition(topic, 0)], 10)[0].offset == 1
    finally:
        consumer.close()
    stale = TxnOffsetCommitRequest[3]
    client = RawClient(broker.bootstrap)
    try:
        pid = describe(broker.bootstrap, f"{topic}-tx").producer_id  # type: ignore[attr-defined]
        answer = client.request(stale(
            transactional_id=f"{topic}-tx", group_id=group, producer_id=pid, producer_epoch=0,
            generation_id=99, member_id="gone", group_instance_id=None, topics=[
                stale.TxnOffsetCommitRequestTopic(name=topic, partitions=[
                    stale.TxnOffsetCommitRequestTopic.TxnOffsetCommitRequestPartition(
                        partition_index=0, committed_offset=0, committed_leader_epoch=-1,
                        committed_metadata="")])]))
    finally:
        client.close()
    assert answer.topics[0].partitions[0].error_code in (  # type: ignore[attr-defined]
        ErrorCode.ILLEGAL_GENERATION, ErrorCode.UNKNOWN_MEMBER_ID)


def test_aiokafka_transactional_producer(broker: InProcessBroker, topic: str) -> None:
    create_topic(broker.bootstrap, topic)

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap,
                                    transactional_id=f"{topic}-aio")
        await producer.start()
        try:
            async with producer.transaction():
                await producer.send_and_wait(topic, b"kept")
                await producer.send_offsets_to_transaction(
                    {AioTopicPartition(topic, 0): 1}, f"{topic}-g")
            await producer.begin_transaction()
            await producer.send_and_wait(topic, b"dropped")
            await producer.abort_transaction()
        finally:
            await producer.stop()

    asyncio.run(asyncio.wait_for(run(), 60))
    assert read_all(broker.bootstrap, topic, "read_committed") == [b"kept"]
    assert _offset_fetch(broker.bootstrap, f"{topic}-g", topic) == (0, 1)


def test_kafka_python_transactional_producer_with_offsets(broker: InProcessBroker, topic: str
                                                          ) -> None:
    source, sink = create_topic(broker.bootstrap, topic), f"{topic}.out"
    create_topic(broker.bootstrap, sink)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id=f"{topic}-kp")
    try:
        producer.init_transactions()
        producer.begin_transaction()
        producer.send(sink, b"kept")
        producer.send_offsets_to_transaction(
            {KafkaTopicPartition(source, 0): OffsetAndMetadata(3, "", -1)}, f"{topic}-g")
        producer.commit_transaction()
        producer.begin_transaction()
        producer.send(sink, b"dropped").get(10)
        producer.abort_transaction()
    finally:
        producer.close(5)
    assert read_all(broker.bootstrap, sink, "read_committed") == [b"kept"]
    assert _offset_fetch(broker.bootstrap, f"{topic}-g", source) == (0, 3)


def test_a_zombie_is_fenced(broker: InProcessBroker, topic: str) -> None:
    """A second producer with the same transactional id aborts the first one's open
    transaction and fences it: the zombie can neither commit nor write."""
    create_topic(broker.bootstrap, topic)
    zombie = open_transaction(broker.bootstrap, f"{topic}-tx", topic, b"zombie")
    successor = transactional(broker.bootstrap, f"{topic}-tx")
    with pytest.raises(KafkaException) as failed:
        zombie.commit_transaction(10)
    assert failed.value.args[0].fatal(), failed.value
    assert failed.value.args[0].code() == LOCAL_FENCED, failed.value
    successor.begin_transaction()
    successor.produce(topic, b"successor")
    successor.commit_transaction(30)
    assert read_all(broker.bootstrap, topic, "read_committed") == [b"successor"]


def test_a_transaction_past_its_timeout_is_aborted(own_broker: InProcessBroker, topic: str
                                                  ) -> None:
    own_broker.extra += ("--transaction-abort-timed-out-transaction-cleanup-interval-ms", "100")
    own_broker.start()
    create_topic(own_broker.bootstrap, topic)
    producer = open_transaction(own_broker.bootstrap, f"{topic}-tx", topic, b"too slow",
                                **{"transaction.timeout.ms": 1000})
    before = describe(own_broker.bootstrap, f"{topic}-tx")
    found = wait_for_state(own_broker.bootstrap, f"{topic}-tx", "CompleteAbort")
    assert found.transaction_state == "CompleteAbort"  # type: ignore[attr-defined]
    assert found.producer_epoch == before.producer_epoch + 1  # type: ignore[attr-defined]
    with pytest.raises(KafkaException):
        producer.commit_transaction(10)
    assert read_all(own_broker.bootstrap, topic, "read_committed") == []
    assert "timed out" in own_broker.log()


def test_idle_transactional_ids_expire(own_broker: InProcessBroker, topic: str) -> None:
    own_broker.extra += ("--transactional-id-expiration-ms", "200",
                         "--transaction-remove-expired-transaction-cleanup-interval-ms", "50")
    own_broker.start()
    create_topic(own_broker.bootstrap, topic)
    producer = open_transaction(own_broker.bootstrap, f"{topic}-tx", topic, b"x")
    producer.commit_transaction(30)
    gone = ErrorCode.TRANSACTIONAL_ID_NOT_FOUND
    deadline = time.monotonic() + 10
    while describe(own_broker.bootstrap, f"{topic}-tx").error_code != gone:  # type: ignore
        assert time.monotonic() < deadline, "the id did not expire"
        time.sleep(0.05)
    own_broker.restart()  # forgotten for good: the transaction log says so
    assert describe(own_broker.bootstrap, f"{topic}-tx").error_code == gone  # type: ignore


def test_timeouts_past_the_maximum_are_refused(own_broker: InProcessBroker, topic: str) -> None:
    own_broker.extra += ("--transaction-max-timeout-ms", "5000")
    own_broker.start()
    producer = Producer({"bootstrap.servers": own_broker.bootstrap,
                         "transactional.id": f"{topic}-tx", "transaction.timeout.ms": 10_000})
    with pytest.raises(KafkaException) as failed:
        producer.init_transactions(10)
    assert failed.value.args[0].code() == ErrorCode.INVALID_TRANSACTION_TIMEOUT


def test_list_and_describe_transactions(broker: InProcessBroker, topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    producer = open_transaction(broker.bootstrap, f"{topic}-open", topic, b"x")
    client = RawClient(broker.bootstrap)
    try:
        listed = client.request(ListTransactionsRequest[1](
            state_filters=["Ongoing", "Nonsense"], producer_id_filters=[], duration_filter=-1))
        missing = client.request(DescribeTransactionsRequest[0](transactional_ids=["nobody"]))
    finally:
        client.close()
    assert listed.unknown_state_filters == ["Nonsense"]  # type: ignore[attr-defined]
    assert f"{topic}-open" in [t.transactional_id for t in listed.transaction_states]  # type: ignore
    assert missing.transaction_states[0].error_code == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND  # type: ignore
    producer.abort_transaction(30)


def test_an_open_transaction_survives_a_restart(own_broker: InProcessBroker, topic: str
                                                ) -> None:
    """The coordinator's state is in its log: after a restart the transaction is still open
    and its producer commits it."""
    own_broker.start()
    create_topic(own_broker.bootstrap, topic)
    producer = open_transaction(own_broker.bootstrap, f"{topic}-tx", topic, b"across a restart")
    own_broker.restart()
    found = describe(own_broker.bootstrap, f"{topic}-tx")
    assert found.transaction_state == "Ongoing"  # type: ignore[attr-defined]
    producer.commit_transaction(30)
    assert read_all(own_broker.bootstrap, topic, "read_committed") == [b"across a restart"]


def open_raw_transaction(raw: RawClient, transactional_id: str, topic: str,
                         batch: Callable[[int, int], bytes]) -> tuple[int, int]:
    """InitProducerId, AddPartitionsToTxn (partition 0 of `topic`) and a Produce of
    `batch(producer id, epoch)`, raw; returns the producer id and epoch."""
    init = raw.request(InitProducerIdRequest[4](transactional_id=transactional_id,
                                                transaction_timeout_ms=60_000))
    pid, epoch = init.producer_id, init.producer_epoch  # type: ignore[attr-defined]
    add = AddPartitionsToTxnRequest[3]
    added = raw.request(add(v3_and_below_transactional_id=transactional_id,
                            v3_and_below_producer_id=pid, v3_and_below_producer_epoch=epoch,
                            v3_and_below_topics=[add.AddPartitionsToTxnTopic(name=topic,
                                                                             partitions=[0])]))
    assert added.results_by_topic_v3_and_below[0].results_by_partition[0] \
        .partition_error_code == 0  # type: ignore[attr-defined]
    assert partition_error(raw.request(produce_request(topic, batch(pid, epoch)))) == 0
    return pid, epoch


def end_txn(pid: int, epoch: int, transactional_id: str = "tx") -> object:
    return EndTxnRequest[3](transactional_id=transactional_id, producer_id=pid,
                            producer_epoch=epoch, committed=True)


def _one_record(pid: int, epoch: int) -> bytes:
    return encode_batch([(None, b"r", (), None)], producer_id=pid, producer_epoch=epoch,
                        base_sequence=0, transactional=True)


def test_a_client_gone_during_end_txn_leaves_no_transaction_stuck(own_broker: InProcessBroker
                                                                  ) -> None:
    """Under --flush always, EndTxn waits for fsyncs; a client that hangs up meanwhile must not
    leave its transaction half-changed (answered CONCURRENT_TRANSACTIONS forever): the
    coordinator's work goes on without it, as Kafka's does."""
    own_broker.extra += ("--flush", "always")
    own_broker.start()
    bootstrap = own_broker.bootstrap
    create_topic(bootstrap, "t")
    for attempt in range(5):
        tid = f"gone-{attempt}"
        raw = RawClient(bootstrap)
        pid, epoch = open_raw_transaction(raw, tid, "t", _one_record)
        request = end_txn(pid, epoch, tid)
        request.with_header(correlation_id=9, client_id="raw")  # type: ignore[attr-defined]
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.send(request.encode(header=True, framed=True))  # type: ignore[attr-defined]
        raw.close()  # at once, with a reset: the broker's handler is still at work
        found = wait_for_state(bootstrap, tid, "CompleteCommit", seconds=5)
        assert found.transaction_state == "CompleteCommit", attempt  # type: ignore[attr-defined]


def _page_sized_batch(pid: int, epoch: int) -> bytes:
    """A transactional batch of exactly one page, so the marker after it needs a new page."""
    for size in range(PAGE):
        batch = encode_batch([(None, b"x" * size, (), None)], producer_id=pid,
                             producer_epoch=epoch, base_sequence=0, transactional=True)
        if len(batch) == PAGE:
            return batch
    raise AssertionError("no value length makes a one-page batch")


def test_markers_refused_by_a_full_disk_are_written_later(
        small_disk: SmallDisk, disk_broker: InProcessBroker) -> None:
    """EndTxn whose COMMIT marker the disk refuses answers NOT_COORDINATOR (clients retry),
    the transaction stays PrepareCommit with nothing of it visible to read_committed, and the
    periodic check writes the marker once there is room: then all of it is visible, once,
    also after a restart."""
    disk_broker.extra += ("--transaction-abort-timed-out-transaction-cleanup-interval-ms", "100")
    disk_broker.restart()
    bootstrap = disk_broker.bootstrap
    create_topic(bootstrap, "t")
    raw = RawClient(bootstrap)
    try:
        pid, epoch = open_raw_transaction(raw, "tx", "t", _page_sized_batch)
        small_disk.fill(leave=0)

        def end() -> int:
            return raw.request(end_txn(pid, epoch)).error_code  # type: ignore[attr-defined]

        assert end() == ErrorCode.NOT_COORDINATOR
        assert describe(bootstrap, "tx").transaction_state == "PrepareCommit"  # type: ignore
        assert end() == ErrorCode.CONCURRENT_TRANSACTIONS  # the broker finishes it itself
        assert read_all(bootstrap, "t", "read_committed") == []
        small_disk.release()
        found = wait_for_state(bootstrap, "tx", "CompleteCommit")
        assert found.transaction_state == "CompleteCommit"  # type: ignore[attr-defined]
        assert end() == 0  # a retry of the commit that is done
    finally:
        raw.close()
    assert len(read_all(bootstrap, "t", "read_committed")) == 1
    disk_broker.restart()
    assert len(read_all(bootstrap, "t", "read_committed")) == 1
    assert describe(bootstrap, "tx").transaction_state == "CompleteCommit"  # type: ignore


def test_raw_answers_per_version(broker: InProcessBroker, topic: str) -> None:
    """AddPartitionsToTxn with an unknown partition fails it alone and leaves the others not
    attempted; a fenced epoch is PRODUCER_FENCED from KIP-588's versions on, and
    INVALID_PRODUCER_EPOCH to older ones."""
    create_topic(broker.bootstrap, topic)
    raw = RawClient(broker.bootstrap)
    try:
        tid = f"{topic}-raw"
        old = raw.request(InitProducerIdRequest[4](transactional_id=tid,
                                                   transaction_timeout_ms=60_000))
        pid, epoch = old.producer_id, old.producer_epoch  # type: ignore[attr-defined]
        raw.request(InitProducerIdRequest[4](transactional_id=tid, transaction_timeout_ms=60_000))

        def add(version: int, epoch: int, partitions: list[int]) -> list[int]:
            cls = AddPartitionsToTxnRequest[version]
            answer = raw.request(cls(
                v3_and_below_transactional_id=tid, v3_and_below_producer_id=pid,
                v3_and_below_producer_epoch=epoch, v3_and_below_topics=[
                    cls.AddPartitionsToTxnTopic(name=topic, partitions=partitions)]))
            return [r.partition_error_code for r in answer  # type: ignore[attr-defined]
                    .results_by_topic_v3_and_below[0].results_by_partition]

        assert add(3, epoch + 1, [0, 7]) == [ErrorCode.OPERATION_NOT_ATTEMPTED,
                                             ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]
        assert add(2, epoch, [0]) == [ErrorCode.PRODUCER_FENCED]
        assert add(1, epoch, [0]) == [ErrorCode.INVALID_PRODUCER_EPOCH]
        assert raw.request(EndTxnRequest[1](  # type: ignore[attr-defined]
            transactional_id=tid, producer_id=pid, producer_epoch=epoch,
            committed=True)).error_code == ErrorCode.INVALID_PRODUCER_EPOCH
        assert raw.request(end_txn(pid, epoch + 1, tid)).error_code \
            == ErrorCode.INVALID_TXN_STATE  # type: ignore[attr-defined]
    finally:
        raw.close()
