"""The partitioned log: append/read, segments, time lookup, retention, topics, idempotence, the
data-directory lock and flush policies."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from logkit import FakeClock, make_batch, payload_id, published_state, read_records

from minikafka.errors import (
    CorruptRecordError,
    DataDirLockedError,
    InvalidConfigError,
    InvalidPartitionsError,
    InvalidTopicError,
    MessageTooLargeError,
    OffsetOutOfRangeError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from minikafka.log import (
    FlushPolicy,
    InvalidProducerEpochError,
    LogManager,
    OutOfOrderSequenceError,
    Partition,
)
from minikafka.records import Record, decode_batches, encode_batch, read_header

OpenLog = Callable[..., LogManager]


def fill(partition: Partition, batches: int, per_batch: int = 10, **kwargs: object) -> None:
    for i in range(batches):
        partition.append(make_batch(per_batch, start=i * per_batch, **kwargs))


@pytest.fixture
def part(log: LogManager) -> Partition:
    log.create_topic("t", 1)
    return log.partition("t", 0)


# --- append and read ------------------------------------------------------------------------


def test_append_assigns_contiguous_offsets_and_reads_them_back(part: Partition) -> None:
    infos = [part.append(make_batch(n, start=10 * i)) for i, n in enumerate((1, 5, 3))]
    assert [(i.base_offset, i.last_offset) for i in infos] == [(0, 0), (1, 5), (6, 8)]
    assert part.high_watermark == part.log_end_offset == 9
    records = read_records(part)
    assert [r.offset for r in records] == list(range(9))
    assert [payload_id(r.value) for r in records][:3] == ["r:00000000", "r:00000010", "r:00000011"]


def test_read_returns_the_whole_batch_containing_the_offset(part: Partition) -> None:
    fill(part, 3, per_batch=10)
    data = part.read(14, 1 << 20).read()
    batches = list(decode_batches(data))
    assert [b.header.base_offset for b in batches] == [10, 20]


def test_read_returns_one_batch_even_past_max_bytes(part: Partition) -> None:
    fill(part, 3, per_batch=10)
    one = part.read(0, 1)
    assert [b.header.base_offset for b in decode_batches(one.read())] == [0]
    size = read_header(one.read()).size
    two = part.read(0, 2 * size)  # exactly two fit
    assert [b.header.base_offset for b in decode_batches(two.read())] == [0, 10]
    assert two.length == 2 * size


def test_read_at_high_watermark_is_none_and_outside_raises(part: Partition) -> None:
    assert part.read(0, 100) is None
    fill(part, 2)
    assert part.read(20, 100) is None
    with pytest.raises(OffsetOutOfRangeError):
        part.read(21, 100)
    with pytest.raises(OffsetOutOfRangeError):
        part.read(-1, 100)


def test_append_refuses_corrupt_oversized_and_multiple_batches(log: LogManager) -> None:
    log.create_topic("small", 1, {"max.message.bytes": 500})
    part = log.partition("small", 0)
    bad = bytearray(make_batch(1))
    bad[-1] ^= 1
    with pytest.raises(CorruptRecordError):
        part.append(bad)
    with pytest.raises(CorruptRecordError, match="exactly one"):
        part.append(make_batch(1) + make_batch(1))
    with pytest.raises(MessageTooLargeError):
        part.append(make_batch(10))
    assert part.log_end_offset == 0


def test_log_append_time_topic_stamps_the_brokers_clock(log: LogManager, clock: FakeClock
                                                        ) -> None:
    log.create_topic("lat", 1, {"message.timestamp.type": "LogAppendTime"})
    part = log.partition("lat", 0)
    info = part.append(make_batch(3, timestamp=123))
    assert info.log_append_time == clock.ms
    assert {r.timestamp for r in read_records(part)} == {clock.ms}


# --- segments -------------------------------------------------------------------------------


def test_segments_roll_by_size_in_kafkas_layout(log: LogManager, data_dir: Path) -> None:
    log.create_topic("t", 2, {"segment.bytes": 5000})
    part = log.partition("t", 1)
    fill(part, 12, per_batch=10)
    per_segment = 5000 // len(make_batch(10))  # whole batches that fit in 5000 bytes
    names = sorted(os.listdir(data_dir / "t-1"))
    logs = [n for n in names if n.endswith(".log")]
    assert logs == [f"{b:020d}.log" for b in range(0, 120, 10 * per_segment)]
    assert len(logs) >= 3
    for name in logs:
        base = name[:-4]
        assert f"{base}.index" in names and f"{base}.timeindex" in names
        assert os.path.getsize(data_dir / "t-1" / name) <= 5000
        first = read_header((data_dir / "t-1" / name).read_bytes())
        assert first.base_offset == int(base)
    assert (data_dir / "t-0").is_dir()
    assert [r.offset for r in read_records(part, max_bytes=3000)] == list(range(120))


def test_segments_roll_by_age(log: LogManager, clock: FakeClock) -> None:
    log.create_topic("t", 1, {"segment.ms": 60_000})
    part = log.partition("t", 0)
    part.append(make_batch(1, timestamp=clock.ms))
    clock.advance(30)
    part.append(make_batch(1, timestamp=clock.ms))
    assert len(part.segments) == 1
    clock.advance(31)
    part.append(make_batch(1, timestamp=clock.ms))
    assert [s.base_offset for s in part.segments] == [0, 2]


def test_a_reader_follows_segments_another_manager_rolled(open_log: OpenLog) -> None:
    writer, reader = open_log(), open_log()
    writer.create_topic("t", 1, {"segment.bytes": 3000})
    following = reader.partition("t", 0)
    assert following.read(0, 100) is None  # its view now: one empty segment
    fill(writer.partition("t", 0), 10)
    assert [r.offset for r in read_records(following)] == list(range(100))


def test_a_reader_follows_retention_another_manager_applied(open_log: OpenLog) -> None:
    writer, reader = open_log(), open_log()
    writer.create_topic("t", 1, {"segment.bytes": 3000, "retention.bytes": 3000})
    following = reader.partition("t", 0)
    fill(writer.partition("t", 0), 5)
    assert read_records(following)[0].offset == 0
    writer.apply_retention()
    fill(writer.partition("t", 0), 5)
    start = writer.partition("t", 0).log_start_offset
    assert start > 0
    with pytest.raises(OffsetOutOfRangeError):
        following.read(0, 100)
    assert [r.offset for r in read_records(following)] == list(range(start, 100))


def test_old_timestamps_do_not_roll_a_segment_per_batch(log: LogManager) -> None:
    log.create_topic("t", 1, {"segment.ms": 60_000})
    part = log.partition("t", 0)
    for i in range(5):
        part.append(make_batch(1, start=i, timestamp=1000 + i))  # 1970, but 1 ms apart
    assert len(part.segments) == 1


def test_log_append_time_segments_roll_by_the_brokers_clock(log: LogManager, clock: FakeClock
                                                            ) -> None:
    log.create_topic("t", 1, {"segment.ms": 60_000, "message.timestamp.type": "LogAppendTime"})
    part = log.partition("t", 0)
    part.append(make_batch(1, timestamp=5))
    clock.advance(59)
    part.append(make_batch(1, timestamp=5))
    clock.advance(2)
    part.append(make_batch(1, timestamp=5))
    assert [s.base_offset for s in part.segments] == [0, 2]


def test_sparse_index_has_entries_and_lookups_use_it(log: LogManager, data_dir: Path) -> None:
    log.create_topic("t", 1, {"index.interval.bytes": 1000})
    part = log.partition("t", 0)
    fill(part, 20, per_batch=10)
    entries = (data_dir / "t-0" / f"{0:020d}.index").read_bytes()
    assert len(entries) // 8 >= 10
    for offset in (0, 55, 199):
        assert read_records(part, offset)[0].offset == offset


def test_offset_for_timestamp(part: Partition) -> None:
    for i in range(10):
        part.append(encode_batch([Record(b"a", timestamp=1000 + 100 * i),
                                  Record(b"b", timestamp=1050 + 100 * i)]))
    assert part.offset_for_timestamp(0) == (0, 1000)
    assert part.offset_for_timestamp(1050) == (1, 1050)
    assert part.offset_for_timestamp(1051) == (2, 1100)
    assert part.offset_for_timestamp(1950) == (19, 1950)
    assert part.offset_for_timestamp(1951) is None


def test_offset_for_timestamp_across_segments(log: LogManager) -> None:
    # 1970 timestamps: keep them forever, or the rolls' retention would delete them
    log.create_topic("t", 1, {"segment.bytes": 3000, "index.interval.bytes": 100,
                              "retention.ms": -1})
    part = log.partition("t", 0)
    for i in range(30):
        part.append(make_batch(5, start=5 * i, timestamp=10_000 + i))
    assert len(part.segments) > 3
    assert part.offset_for_timestamp(10_017) == (85, 10_017)


# --- retention and delete_records -----------------------------------------------------------


def test_a_segment_roll_applies_retention(log: LogManager, clock: FakeClock) -> None:
    """Logs that keep growing need nobody to call apply_retention."""
    log.create_topic("t", 1, {"segment.bytes": 3000, "retention.bytes": 6000})
    part = log.partition("t", 0)
    for i in range(40):
        part.append(make_batch(10, start=10 * i, timestamp=clock.ms))
    assert part.size <= 6000 + 2 * 3000  # the active segment and the one just closed over
    assert part.log_start_offset > 0 and part.segments[0].base_offset == part.log_start_offset


def test_retention_by_time_removes_whole_old_segments(log: LogManager, clock: FakeClock) -> None:
    log.create_topic("t", 1, {"segment.bytes": 3000, "retention.ms": 60_000})
    part = log.partition("t", 0)
    for i in range(12):
        part.append(make_batch(10, start=10 * i, timestamp=clock.ms + 10_000 * i))
    bases = [s.base_offset for s in part.segments]
    assert len(bases) >= 4
    assert log.apply_retention(now_ms=clock.ms + 65_000) == 0  # nothing older than 60 s yet
    # at +95 s, batches stamped before +35 s are expired: the segments ending before them go
    removed = log.apply_retention(now_ms=clock.ms + 95_000)
    assert removed >= 1
    assert part.log_start_offset == part.segments[0].base_offset > 0
    assert part.segments[0].max_timestamp >= clock.ms + 35_000
    assert read_records(part)[0].offset == part.log_start_offset
    with pytest.raises(OffsetOutOfRangeError):
        part.read(0, 100)
    # the active segment survives even when everything is expired
    log.apply_retention(now_ms=clock.ms + 10**9)
    assert len(part.segments) == 1 and part.log_end_offset == 120


def test_retention_by_bytes_keeps_the_newest_within_budget(log: LogManager) -> None:
    log.create_topic("t", 1, {"segment.bytes": 3000, "retention.bytes": 7000,
                              "retention.ms": -1})
    part = log.partition("t", 0)
    fill(part, 20)
    before = part.size
    part.apply_retention()
    # Kafka's rule: delete the oldest segments while the rest still holds retention.bytes
    assert before > part.size >= 7000
    assert part.size - part.segments[0].size < 7000
    first = part.segments[0].base_offset
    assert part.log_start_offset == first and first % 10 == 0
    assert [r.offset for r in read_records(part)] == list(range(first, 200))


@pytest.mark.parametrize("policy, kept", [("compact", True), ("compact,delete", False),
                                           ("delete", False)])
def test_retention_applies_only_where_the_policy_says_delete(log: LogManager, clock: FakeClock,
                                                             policy: str, kept: bool) -> None:
    """A compacted topic keeps every key however old (its cleaner, not retention, prunes it)."""
    log.create_topic("t", 1, {"segment.bytes": 3000, "retention.ms": 1, "retention.bytes": 0,
                              "cleanup.policy": policy})
    part = log.partition("t", 0)
    for i in range(12):
        part.append(make_batch(10, start=10 * i, timestamp=clock.ms))
    log.apply_retention(now_ms=clock.ms + 60_000)
    assert (part.log_start_offset == 0) is kept
    assert (len(read_records(part)) == 120) is kept


def test_delete_records_moves_the_log_start(part: Partition, data_dir: Path) -> None:
    fill(part, 5)
    assert part.delete_records(23) == 23
    assert read_records(part)[0].offset == 23
    with pytest.raises(OffsetOutOfRangeError):
        part.read(22, 100)
    assert part.delete_records(10) == 23  # never moves back
    with pytest.raises(OffsetOutOfRangeError):
        part.delete_records(51)
    assert published_state(data_dir / "t-0").log_start_offset == 23


def test_log_start_offset_survives_reopen(open_log: OpenLog, data_dir: Path) -> None:
    log = open_log()
    log.create_topic("t", 1, {"segment.bytes": 3000})
    fill(log.partition("t", 0), 10)
    log.partition("t", 0).delete_records(45)
    log.close()
    again = open_log().partition("t", 0)
    assert again.log_start_offset == 45
    assert [r.offset for r in read_records(again)] == list(range(45, 100))


# --- topics -------------------------------------------------------------------------------


def test_topic_admin_persists_across_reopen(open_log: OpenLog, data_dir: Path) -> None:
    log = open_log()
    log.create_topic("orders", 2, {"retention.ms": "1000"})
    log.create_topic("audit", 1)
    log.add_partitions("orders", 4)
    log.alter_topic_config("orders", {"segment.bytes": "123456"}, delete=["retention.ms"])
    fill(log.partition("audit", 0), 1)
    log.delete_topic("audit")
    log.close()

    log = open_log()
    assert log.topics() == ["orders"]
    config = log.topic_config("orders")
    assert (config.partitions, config.segment_bytes, config.retention_ms) == (
        4, 123456, 7 * 24 * 3600 * 1000)
    assert json.loads((data_dir / "__meta/topics/orders.json").read_text())["partitions"] == 4
    assert sorted(p.name for p in data_dir.iterdir() if p.name != "__meta") == [
        f"orders-{p}" for p in range(4)]
    log.partition("orders", 3).append(make_batch(1))
    with pytest.raises(UnknownTopicOrPartitionError):
        log.partition("audit", 0)
    # re-creating a deleted topic starts from an empty log
    log.create_topic("audit", 1)
    assert log.partition("audit", 0).log_end_offset == 0


def test_config_changed_by_another_manager_is_seen(open_log: OpenLog) -> None:
    one, two = open_log(), open_log()
    one.create_topic("t", 1)
    two.alter_topic_config("t", {"max.message.bytes": 100})
    assert one.topic_config("t").max_message_bytes == 100


@pytest.mark.parametrize("name", ["", ".", "..", "a" * 250, "has space", "slash/y", "ü"])
def test_invalid_topic_names(log: LogManager, name: str) -> None:
    with pytest.raises(InvalidTopicError):
        log.create_topic(name, 1)


def test_reserved_topic_names(log: LogManager) -> None:
    for name in ("__consumer_offsets", "__meta"):
        with pytest.raises(InvalidTopicError, match="reserved"):
            log.create_topic(name, 1)


def test_topic_admin_errors(log: LogManager) -> None:
    for count in (0, -1):
        with pytest.raises(InvalidPartitionsError):
            log.create_topic("t", count)
    log.create_topic("t", 2)
    with pytest.raises(TopicAlreadyExistsError):
        log.create_topic("t", 1)
    with pytest.raises(InvalidPartitionsError):
        log.add_partitions("t", 2)
    with pytest.raises(UnknownTopicOrPartitionError):
        log.partition("t", 2)
    with pytest.raises(UnknownTopicOrPartitionError):
        log.partition("nope", 0)
    with pytest.raises(UnknownTopicOrPartitionError):
        log.delete_topic("nope")
    with pytest.raises(InvalidConfigError):
        log.alter_topic_config("t", {"no.such.config": 1})
    with pytest.raises(InvalidConfigError):
        log.create_topic("u", 1, {"cleanup.policy": "shred"})
    with pytest.raises(InvalidConfigError):
        log.create_topic("u", 1, {"segment.bytes": "lots"})
    assert log.topics() == ["t"]


# --- idempotent producers ---------------------------------------------------------------------


def producer_batch(seq: int, count: int = 2, pid: int = 7, epoch: int = 0) -> bytes:
    return make_batch(count, start=seq, producer_id=pid, producer_epoch=epoch,
                      base_sequence=seq)


def test_idempotent_duplicates_gaps_and_epochs(part: Partition) -> None:
    first = part.append(producer_batch(0))
    second = part.append(producer_batch(2))
    again = part.append(producer_batch(0))
    assert (again.base_offset, again.last_offset, again.duplicate) == (0, 1, True)
    assert part.append(producer_batch(2)).base_offset == second.base_offset
    assert part.log_end_offset == 4 and not first.duplicate
    with pytest.raises(OutOfOrderSequenceError):
        part.append(producer_batch(5))
    part.append(producer_batch(0, epoch=1))
    with pytest.raises(InvalidProducerEpochError):
        part.append(producer_batch(4, epoch=0))
    with pytest.raises(OutOfOrderSequenceError):
        part.append(producer_batch(3, epoch=2))  # a new epoch starts at 0
    part.append(producer_batch(0, pid=8))  # producers are independent
    assert part.log_end_offset == 8


def test_only_the_last_five_batches_are_remembered(part: Partition) -> None:
    for i in range(7):
        part.append(producer_batch(2 * i))
    assert part.append(producer_batch(4)).duplicate
    with pytest.raises(OutOfOrderSequenceError):
        part.append(producer_batch(2))


def check_producer_state_restored(part: Partition) -> None:
    dup = part.append(producer_batch(2))
    assert (dup.base_offset, dup.duplicate) == (2, True)
    with pytest.raises(OutOfOrderSequenceError):
        part.append(producer_batch(9))
    with pytest.raises(InvalidProducerEpochError):
        part.append(producer_batch(0, pid=8, epoch=0))
    assert part.append(producer_batch(4)).base_offset == 6


def start_producers(part: Partition) -> None:
    part.append(producer_batch(0))
    part.append(producer_batch(2))
    part.append(producer_batch(0, pid=8, epoch=3))


@pytest.mark.parametrize("segment_bytes", [1 << 20, 400])  # 400: every batch rolls a segment
def test_producer_state_survives_close_and_reopen(open_log: OpenLog, segment_bytes: int) -> None:
    log = open_log()
    log.create_topic("t", 1, {"segment.bytes": segment_bytes})
    start_producers(log.partition("t", 0))
    log.close()
    check_producer_state_restored(open_log().partition("t", 0))


@pytest.mark.parametrize("segment_bytes", [1 << 20, 400])
def test_producer_state_survives_a_crash(open_log: OpenLog, data_dir: Path, tmp_path: Path,
                                         segment_bytes: int) -> None:
    log = open_log()
    log.create_topic("t", 1, {"segment.bytes": segment_bytes})
    start_producers(log.partition("t", 0))
    crashed = shutil.copytree(data_dir, tmp_path / "crashed")  # never closed: no final snapshot
    check_producer_state_restored(open_log(crashed).partition("t", 0))


def test_producer_state_is_shared_between_processes(open_log: OpenLog) -> None:
    one, two = open_log(), open_log()
    one.create_topic("t", 1)
    start_producers(one.partition("t", 0))
    check_producer_state_restored(two.partition("t", 0))


def producer_at(clock: FakeClock, pid: int, seq: int = 0) -> bytes:
    """A batch of producer `pid` stamped with the clock's now (expiry goes by batch time)."""
    return make_batch(2, start=seq, producer_id=pid, producer_epoch=0, base_sequence=seq,
                      timestamp=clock.ms)


def snapshot_producers(data_dir: Path) -> set[int]:
    path = data_dir / "t-0" / "producer.snapshot"
    return {int(p) for p in json.loads(path.read_text())["producers"]} if path.exists() else set()


def test_idle_producers_expire_by_producer_id_expiration_ms(
        open_log: OpenLog, clock: FakeClock, data_dir: Path) -> None:
    log = open_log(clock=clock, producer_id_expiration_ms=60_000)
    log.create_topic("t", 1)
    part = log.partition("t", 0)
    part.append(producer_at(clock, 7))
    clock.advance(30)
    part.append(producer_at(clock, 8))
    clock.advance(31)  # 7 idle for 61 s, 8 for 31 s
    part.apply_retention()  # the broker's periodic housekeeping
    assert part.append(producer_at(clock, 8)).duplicate  # 8 is still known
    retried = part.append(producer_at(clock, 7))  # 7 was forgotten: its retry is new, as in Kafka
    assert not retried.duplicate and retried.base_offset == 4
    clock.advance(61)
    log.close()  # the snapshot keeps only live producers: none
    assert snapshot_producers(data_dir) == set()
    reopened = open_log(clock=clock, producer_id_expiration_ms=60_000).partition("t", 0)
    assert not reopened.append(producer_at(clock, 8)).duplicate  # replayed, then expired


def test_the_producer_snapshot_holds_only_live_producers(
        open_log: OpenLog, clock: FakeClock, data_dir: Path) -> None:
    """A Java client takes a new producer id per instance: the snapshot written at each roll
    must not grow with every id ever seen."""
    log = open_log(clock=clock, producer_id_expiration_ms=10_000)
    log.create_topic("t", 1, {"segment.bytes": 400})  # every batch rolls a segment
    part = log.partition("t", 0)
    for pid in range(100):
        part.append(producer_at(clock, pid))
        clock.advance(1)
        assert len(snapshot_producers(data_dir)) <= 11
    log.close()
    assert snapshot_producers(data_dir) == set(range(91, 100))  # 90 is 10 s old: gone


def test_producer_id_expiration_defaults_to_a_day(log: LogManager, clock: FakeClock) -> None:
    log.create_topic("t", 1)
    part = log.partition("t", 0)
    part.append(producer_at(clock, 7))
    clock.advance(86_400 - 1)
    part.apply_retention()
    assert part.append(producer_at(clock, 7)).duplicate
    clock.advance(2)
    part.apply_retention()
    assert not part.append(producer_at(clock, 7)).duplicate


# --- the data-directory lock ----------------------------------------------------------------


def test_broker_cannot_open_a_dir_embedded_clients_use(open_log: OpenLog) -> None:
    open_log()
    open_log()
    with pytest.raises(DataDirLockedError, match="in use"):
        open_log(exclusive=True)


def test_embedded_client_is_told_the_brokers_address(open_log: OpenLog) -> None:
    broker = open_log(exclusive=True)
    broker.lock.write_owner_info({"host": "127.0.0.1", "port": 9092})
    with pytest.raises(DataDirLockedError, match=r"127\.0\.0\.1:9092"):
        open_log()
    with pytest.raises(DataDirLockedError):
        open_log(exclusive=True)
    broker.close()
    open_log().create_topic("t", 1)  # released on close


def test_lock_holds_across_processes(open_log: OpenLog, data_dir: Path, spawn) -> None:
    broker = open_log(exclusive=True)
    broker.create_topic("t", 1)
    broker.lock.write_owner_info({"host": "10.1.2.3", "port": 19092})
    worker = spawn("produce", data_dir, "t", "x", "shared", 1)
    assert worker.finish() != 0
    assert "10.1.2.3:19092" in worker.stderr()


def test_unwritable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(DataDirLockedError, match="cannot use"):
        LogManager(blocker / "data")


# --- flush policies -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("always", FlushPolicy("always")), ("never", FlushPolicy("never")),
    ("100ms", FlushPolicy("interval", 100)), ("2s", FlushPolicy("interval", 2000)),
    ("interval:250", FlushPolicy("interval", 250)),
])
def test_flush_policy_parse(text: str, expected: FlushPolicy) -> None:
    assert FlushPolicy.parse(text) == expected
    assert FlushPolicy.parse(str(expected)) == expected


@pytest.mark.parametrize("text", ["sometimes", "0ms", "-5s", ""])
def test_flush_policy_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        FlushPolicy.parse(text)


def test_flush_moves_the_published_recovery_point(part: Partition, data_dir: Path) -> None:
    fill(part, 3)
    assert published_state(data_dir / "t-0")[4:6] == (0, 0)
    part.flush()
    assert published_state(data_dir / "t-0")[4:6] == (0, part.size)


def test_interval_policy_flushes_in_the_background(open_log: OpenLog, data_dir: Path) -> None:
    log = open_log(flush_policy="20ms")
    log.create_topic("t", 1)
    part = log.partition("t", 0)
    fill(part, 3)
    deadline = time.monotonic() + 5
    while published_state(data_dir / "t-0").recovery_position != part.size:
        assert time.monotonic() < deadline, "the flusher never ran"
        time.sleep(0.01)


@pytest.mark.parametrize(("policy", "flushed"), [("never", False), ("always", True)])
def test_close_flushes_unless_never(open_log: OpenLog, data_dir: Path, policy: str,
                                    flushed: bool) -> None:
    log = open_log(flush_policy=policy)
    log.create_topic("t", 1)
    fill(log.partition("t", 0), 3)
    size = log.partition("t", 0).size
    log.close()
    assert (published_state(data_dir / "t-0").recovery_position == size) is flushed


def test_a_topic_from_before_ids_gets_one_on_load_for_good(open_log: OpenLog) -> None:
    first = open_log(exclusive=True)
    first.create_topic("old", 1, {"retention.ms": 1000})
    path = first.meta_dir / "topics" / "old.json"
    first.close()
    data = json.loads(path.read_text())
    del data["topic_id"]
    path.write_text(json.dumps(data))
    second = open_log(exclusive=True)
    given = second.topic_config("old")
    assert given.topic_id is not None and given.retention_ms == 1000
    second.close()
    assert open_log(exclusive=True).topic_config("old").topic_id == given.topic_id
