"""A full disk under a running broker: writes are refused with Kafka's error codes, everything
else is served, and nothing acknowledged before or after is lost or duplicated, also after a
restart. The disk is a real 8 MiB tmpfs (diskkit) that the tests fill and free."""

from __future__ import annotations

import random
import re
import signal
import time
import urllib.request
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.protocol.consumer import OffsetCommitRequest
from kafka.protocol.producer import InitProducerIdRequest, ProduceRequest, ProduceResponse

from diskkit import PAGE, SmallDisk, small_disk
from minikafka.records import Record, encode_batch

from .conftest import BrokerProcess, InProcessBroker, RawClient
from .test_bounds import wait_until

__all__ = ["small_disk"]

TOPIC = "t"
REFUSED_LOG_LINE = "writes are refused with KAFKA_STORAGE_ERROR"


@pytest.fixture
def disk_broker(small_disk: SmallDisk, broker_args: tuple[str, ...]) -> Iterator[InProcessBroker]:
    """A broker whose data directory is the small disk (its log file is beside it)."""
    started = InProcessBroker(small_disk.path, *broker_args).start()
    try:
        yield started
    finally:
        small_disk.release()
        try:
            assert started.stop() in (0, None)
        finally:
            print(started.log())


def create_topic(bootstrap: str, name: str = TOPIC, **config: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1, config=config)])[name].result(10)


class Ledger:
    """Unique records sent by a confluent-kafka producer with acks=all and no retries (so each
    refusal is reported with the broker's own error code), and what became of each."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                  "linger.ms": 0, "retries": 0})
        self.acked: dict[bytes, int] = {}  # value -> offset
        self.errors: list[int] = []
        self.sent = 0

    def send(self, count: int, size: int = 100) -> None:
        """Send `count` records one batch each, and wait for every answer."""
        for _ in range(count):
            value = f"v{self.sent:08d}".encode().ljust(size, b".")
            self.sent += 1
            self.producer.produce(TOPIC, value, partition=0, on_delivery=self._delivered)
            self.producer.flush(30)
        assert self.producer.flush(30) == 0

    def _delivered(self, err: KafkaError | None, msg: object) -> None:
        if err is not None:
            self.errors.append(err.code())
        else:
            self.acked[msg.value()] = msg.offset()  # type: ignore[attr-defined]

    def check(self, bootstrap: str | None = None) -> None:
        """A consumer reads exactly the acknowledged records, each once, at the offset it was
        acknowledged with, and the offsets are contiguous."""
        got = read_all(bootstrap or self.bootstrap)
        assert [offset for offset, _ in got] == list(range(len(got)))
        assert dict((value, offset) for offset, value in got) == self.acked
        assert len(got) == len(self.acked)


def read_all(bootstrap: str) -> list[tuple[int, bytes]]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "fetch.wait.max.ms": 50})
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    got: list[tuple[int, bytes]] = []
    try:
        while True:
            msg = consumer.poll(10)
            assert msg is not None, f"timed out after {len(got)} records"
            if msg.error():
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                return got
            got.append((msg.offset(), msg.value()))
    finally:
        consumer.close()


def storage_errors_metric(broker: InProcessBroker) -> float:
    assert broker.console_url is not None
    with urllib.request.urlopen(broker.console_url + "metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search(r"^minikafka_storage_errors_total (\S+)$", text, re.MULTILINE)
    assert found, "no minikafka_storage_errors_total metric"
    return float(found.group(1))


def test_full_disk_refuses_produce_and_keeps_serving(small_disk: SmallDisk,
                                                      disk_broker: InProcessBroker) -> None:
    """Produce on a full disk is answered KAFKA_STORAGE_ERROR, with one log line and a
    counter, while fetch, metadata, groups and offsets are served; once space is freed produce
    works again, and every acknowledged record is read back exactly once, also after a restart.
    (The connection used to be dropped instead of answered.)"""
    create_topic(disk_broker.bootstrap)
    ledger = Ledger(disk_broker.bootstrap)
    ledger.send(20)
    committer = Consumer({"bootstrap.servers": disk_broker.bootstrap, "group.id": "g",
                          "enable.auto.commit": False})
    committer.commit(offsets=[TopicPartition(TOPIC, 0, 7)], asynchronous=False)
    committer.close()

    small_disk.fill(leave=0)
    ledger.send(4, size=5000)  # each needs pages the disk no longer has
    assert ledger.errors == [KafkaError.KAFKA_STORAGE_ERROR] * 4
    assert len(ledger.acked) == 20
    ledger.check()  # fetch is served
    admin = AdminClient({"bootstrap.servers": disk_broker.bootstrap})
    assert TOPIC in admin.list_topics(timeout=10).topics
    assert "g" in {g.group_id for g in admin.list_consumer_groups().result(10).valid}
    reader = Consumer({"bootstrap.servers": disk_broker.bootstrap, "group.id": "g"})
    assert reader.committed([TopicPartition(TOPIC, 0)], timeout=10)[0].offset == 7
    reader.close()
    ledger.send(4, size=5000)
    assert disk_broker.log().count(REFUSED_LOG_LINE) == 1, disk_broker.log()
    assert storage_errors_metric(disk_broker) == 8

    small_disk.release()
    ledger.send(20)
    ledger.send(3, size=5000)
    assert len(ledger.acked) == 43
    assert "work again" in disk_broker.log()
    ledger.check()
    disk_broker.restart()
    ledger.check()


@pytest.mark.parametrize("failing", [".index", ".timeindex"])
def test_enospc_at_an_index_write_then_kill(small_disk: SmallDisk, broker_args: tuple[str, ...],
                                            failing: str) -> None:
    """A partition's first batch fits the page of .log left free, but its index entry needs
    another page: refused as a whole. Records acknowledged after space is freed are read back
    once each, also after the broker is killed and restarted. (The refused batch's bytes used
    to stay, the next batch took its offsets, and after a restart acknowledged records were
    gone.)"""
    proc = BrokerProcess(small_disk.path, *broker_args).start()
    try:
        create_topic(proc.bootstrap)
        ledger = Ledger(proc.bootstrap)
        small_disk.fill(leave=PAGE if failing == ".index" else 2 * PAGE)
        ledger.send(1, size=1000)
        assert ledger.errors == [KafkaError.KAFKA_STORAGE_ERROR]
        small_disk.release()
        ledger.send(30, size=1000)
        assert len(ledger.acked) == 30
        ledger.check()
        proc.stop(signal.SIGKILL)
        proc.start()
        ledger.check(proc.bootstrap)
    finally:
        small_disk.release()
        proc.stop(signal.SIGKILL)
        print(proc.log())


def test_offset_commit_and_create_topics_on_a_full_disk(small_disk: SmallDisk,
                                                        disk_broker: InProcessBroker) -> None:
    """OffsetCommit answers each partition NOT_COORDINATOR (Kafka's answer when its offsets log
    refuses an append: the client finds the coordinator again and retries), CreateTopics
    answers the topic KAFKA_STORAGE_ERROR and leaves nothing of it behind. Both work once space
    is freed. (Both used to drop the connection, and CreateTopics left partition
    directories.)"""
    create_topic(disk_broker.bootstrap)
    small_disk.fill(leave=0)  # before the first commit: the offsets log has no page yet
    raw = RawClient(disk_broker.bootstrap)
    cls = OffsetCommitRequest[2]

    def commit(offset: int) -> int:
        response = raw.request(cls(
            group_id="g", generation_id_or_member_epoch=-1, member_id="",
            retention_time_ms=-1, topics=[cls.OffsetCommitRequestTopic(
                name=TOPIC, partitions=[cls.OffsetCommitRequestTopic.OffsetCommitRequestPartition(
                    partition_index=0, committed_offset=offset, committed_metadata="")])]))
        return response.topics[0].partitions[0].error_code  # type: ignore[attr-defined]

    assert commit(5) == KafkaError.NOT_COORDINATOR
    admin = AdminClient({"bootstrap.servers": disk_broker.bootstrap})
    with pytest.raises(KafkaException) as refused:
        admin.create_topics([NewTopic("new", 3, 1)])["new"].result(10)
    assert refused.value.args[0].code() == KafkaError.KAFKA_STORAGE_ERROR
    assert "new" not in admin.list_topics(timeout=10).topics
    assert not list(small_disk.path.glob("new-*"))

    small_disk.release()
    assert commit(6) == 0
    admin.create_topics([NewTopic("new", 3, 1)])["new"].result(10)
    raw.close()
    disk_broker.restart()
    reader = Consumer({"bootstrap.servers": disk_broker.bootstrap, "group.id": "g"})
    assert reader.committed([TopicPartition(TOPIC, 0)], timeout=10)[0].offset == 6
    reader.close()
    assert len(admin.list_topics(timeout=10).topics["new"].partitions) == 3


def test_roll_and_shutdown_on_a_full_disk(small_disk: SmallDisk, disk_broker: InProcessBroker
                                          ) -> None:
    """A produce that rolls the segment cannot write the producer snapshot: refused, the
    broker serves on; a shutdown on the full disk (producer snapshots, checkpoints) is clean;
    after a restart with space, every acknowledged record is there once. (The broker used to
    fail to stop, holding its files, and the roll left a segment behind.)"""
    create_topic(disk_broker.bootstrap, **{"segment.bytes": "4000"})
    ledger = Ledger(disk_broker.bootstrap)
    ledger.send(3, size=1000)
    small_disk.fill(leave=0)
    ledger.send(2, size=1000)  # the first rolls and is refused, so is the second
    assert ledger.errors == [KafkaError.KAFKA_STORAGE_ERROR] * 2
    ledger.check()
    assert disk_broker.stop() == 0
    small_disk.release()
    disk_broker.start()
    ledger.send(10, size=1000)
    assert len(ledger.acked) == 13
    ledger.check()


def test_producer_ids_on_a_full_disk(small_disk: SmallDisk, disk_broker: InProcessBroker) -> None:
    """InitProducerId cannot reserve its block of ids on a full disk: answered
    COORDINATOR_LOAD_IN_PROGRESS (Kafka's answer while no block is available, which clients
    retry) as often as asked, never an id whose block is not on disk (after a restart it would
    be handed out again). With space, ids come, and stay unique across a restart."""
    small_disk.fill(leave=0)
    raw = RawClient(disk_broker.bootstrap)

    def init() -> tuple[int, int]:
        answer = raw.request(InitProducerIdRequest[0](transactional_id=None,
                                                      transaction_timeout_ms=1))
        return answer.error_code, answer.producer_id  # type: ignore[attr-defined]

    assert init() == (KafkaError.COORDINATOR_LOAD_IN_PROGRESS, -1)
    assert init() == (KafkaError.COORDINATOR_LOAD_IN_PROGRESS, -1)
    small_disk.release()
    first = init()
    assert first[0] == 0
    raw.close()
    disk_broker.restart()
    raw = RawClient(disk_broker.bootstrap)
    after = init()
    raw.close()
    assert after[0] == 0 and after[1] > first[1]


@pytest.mark.parametrize("rounds", [3, pytest.param(30, marks=pytest.mark.soak)])
def test_disk_fault_campaign(small_disk: SmallDisk, broker_args: tuple[str, ...], rounds: int,
                             capsys: pytest.CaptureFixture[str]) -> None:
    """Rounds of: fill the disk to a few pages or none, send a burst of records of mixed sizes
    (an idempotent producer, acks=all, retrying as clients do), sometimes SIGKILL the broker
    and restart it on the full disk, free the space, wait for every answer. Then, and after a
    last kill: no acknowledged record lost, none duplicated, offsets contiguous. `make soak`
    runs 10x the rounds; the figures are printed."""
    rng = random.Random(rounds)
    proc = BrokerProcess(small_disk.path, *broker_args).start()
    acked: dict[bytes, int] = {}
    failed: list[int] = []

    def delivered(err: KafkaError | None, msg: object) -> None:
        if err is not None:
            failed.append(err.code())
        else:
            acked[msg.value()] = msg.offset()  # type: ignore[attr-defined]

    try:
        create_topic(proc.bootstrap, **{"segment.bytes": "65536"})  # rolls on full disks too
        producer = Producer({"bootstrap.servers": proc.bootstrap, "acks": "all",
                             "enable.idempotence": True, "linger.ms": 2,
                             "message.timeout.ms": 10000, "retry.backoff.ms": 20})
        sent = kills = 0
        for round_ in range(rounds):
            small_disk.fill(leave=PAGE * rng.randrange(4))
            for _ in range(rng.randrange(10, 40)):
                value = f"v{sent:08d}".encode().ljust(rng.choice([50, 500, 3000]), b".")
                producer.produce(TOPIC, value, partition=0, on_delivery=delivered)
                sent += 1
            producer.poll(rng.uniform(0.05, 0.3))
            if round_ % 3 == 2:
                proc.stop(signal.SIGKILL)
                proc.start()
                kills += 1
            small_disk.release()
            assert producer.flush(30) == 0
        got = read_all(proc.bootstrap)
        proc.stop(signal.SIGKILL)
        proc.start()
        assert read_all(proc.bootstrap) == got
    finally:
        small_disk.release()
        proc.stop(signal.SIGKILL)
    offsets = {value: offset for offset, value in got}
    lost = sum(1 for value, offset in acked.items() if offsets.get(value) != offset)
    duplicated = len(got) - len(offsets)
    with capsys.disabled():
        print(f"\ndisk-fault campaign: {rounds} rounds, {kills + 1} kills, {sent} sent, "
              f"{len(acked)} acknowledged, {len(failed)} not acknowledged, {lost} lost, "
              f"{duplicated} duplicated")
    assert [offset for offset, _ in got] == list(range(len(got)))
    assert lost == 0 and duplicated == 0
    assert len(acked) > sent // 2, "few records were acknowledged: the campaign proves little"


def test_first_produce_without_inodes(small_disk: SmallDisk, disk_broker: InProcessBroker
                                      ) -> None:
    """A partition's first produce creates its segment files; with no inode left that fails:
    answered KAFKA_STORAGE_ERROR and counted, and it works once files can be created. (The
    connection used to be dropped.)"""
    create_topic(disk_broker.bootstrap)
    ledger = Ledger(disk_broker.bootstrap)
    small_disk.use_inodes(leave=0)
    ledger.send(1)
    assert ledger.errors == [KafkaError.KAFKA_STORAGE_ERROR]
    assert storage_errors_metric(disk_broker) == 1
    small_disk.release()
    ledger.send(5)
    ledger.check()


def test_offset_expiry_goes_on_after_a_full_disk(small_disk: SmallDisk,
                                                 broker_args: tuple[str, ...]) -> None:
    """The periodic offsets expiry met a refused tombstone write (KAFKA_STORAGE_ERROR, not an
    OSError) and its task ended: offsets never expired again until a restart. It retries."""
    broker = InProcessBroker(small_disk.path, *broker_args, "--offsets-retention-minutes", "0",
                             "--offsets-retention-check-interval-ms", "200").start()
    try:
        create_topic(broker.bootstrap)
        offsets_log = small_disk.path / "__meta" / "offsets.log"
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g",
                             "enable.auto.commit": False, "session.timeout.ms": 6000})
        consumer.subscribe([TOPIC])
        while not consumer.assignment():  # a member: the group keeps its offsets meanwhile
            consumer.poll(0.1)

        def commit(offset: int, metadata: str = "") -> None:
            consumer.commit(offsets=[TopicPartition(TOPIC, 0, offset, metadata)],
                            asynchronous=False)

        commit(1)
        before = offsets_log.stat().st_size
        commit(2)
        frame = offsets_log.stat().st_size - before  # one commit's frame, empty metadata
        commit(3, "x" * (-(offsets_log.stat().st_size + frame) % PAGE))
        assert offsets_log.stat().st_size % PAGE == 0  # the next write needs a new page
        small_disk.fill(leave=0)
        consumer.close()  # the group is empty: the next checks try to expire its offset, and fail
        time.sleep(1)
        small_disk.release()
        reader = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g"})
        try:
            wait_until(lambda: reader.committed([TopicPartition(TOPIC, 0)], timeout=10)[0].offset
                       < 0, 10, "the offset expired once there was room")
        finally:
            reader.close()
    finally:
        small_disk.release()
        assert broker.stop() == 0


def test_pipelined_acks_1_produces_on_a_full_disk(small_disk: SmallDisk,
                                                  disk_broker: InProcessBroker) -> None:
    """acks=1 Produce requests pipelined into one read are written together (group commit): on
    a full disk each is answered KAFKA_STORAGE_ERROR without an offset, and those sent once
    space is freed get the offsets after the acknowledged ones; a consumer reads exactly
    those."""
    create_topic(disk_broker.bootstrap)
    raw = RawClient(disk_broker.bootstrap)
    cls = ProduceRequest[7]

    def pipelined(first: int, count: int, size: int) -> list[tuple[int, int]]:
        """Send values `first`... in one write, a request each; (error, offset) of each."""
        frames = []
        for i in range(first, first + count):
            request = cls(transactional_id=None, acks=1, timeout_ms=5000, topic_data=[
                cls.TopicProduceData(name=TOPIC, partition_data=[
                    cls.TopicProduceData.PartitionProduceData(index=0, records=encode_batch(
                        [Record(f"v{i:08d}".encode().ljust(size, b"."))]))])])
            request.with_header(correlation_id=i, client_id="raw")
            frames.append(request.encode(header=True, framed=True))
        raw.send(b"".join(frames))
        answers = []
        for _ in range(count):
            frame = raw.read_frame()
            assert frame is not None, "connection closed instead of answering"
            answer = ProduceResponse[7].decode(frame, header=True)
            part = answer.responses[0].partition_responses[0]  # type: ignore[attr-defined]
            answers.append((part.error_code, part.base_offset))
        return answers

    assert pipelined(0, 3, 100) == [(0, 0), (0, 1), (0, 2)]
    small_disk.fill(leave=0)
    assert pipelined(3, 4, 5000) == [(KafkaError.KAFKA_STORAGE_ERROR, -1)] * 4
    small_disk.release()
    assert pipelined(7, 3, 100) == [(0, 3), (0, 4), (0, 5)]
    assert [value[:9] for _, value in read_all(disk_broker.bootstrap)] == [
        f"v{i:08d}".encode() for i in (0, 1, 2, 7, 8, 9)]
