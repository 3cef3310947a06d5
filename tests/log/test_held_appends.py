"""Held appends (the broker's group commit): batches taken into the log at once but written by
one `write_held`, in order, each caller told how the write went; whatever is written in
between (a batch with a producer id, a roll) writes the held ones first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from logkit import make_batch, payload_id, read_records

from minikafka.errors import KafkaStorageError
from minikafka.log import LogManager, Partition

OpenLog = Callable[..., LogManager]


@pytest.fixture
def log(open_log: OpenLog) -> LogManager:
    """A broker's log (only a log no other process writes holds appends)."""
    made = open_log(exclusive=True)
    made.create_topic("t", 1)
    return made


def ids(partition: Partition) -> list[str]:
    return [payload_id(r.value) for r in read_records(partition)]


def test_held_batches_are_written_together_by_write_held(log: LogManager, data_dir: Path
                                                          ) -> None:
    part = log.partition("t", 0)
    part.append(make_batch(2))
    segment_file = data_dir / "t-0" / f"{0:020d}.log"
    size = segment_file.stat().st_size
    told: list[KafkaStorageError | None] = []
    infos = [part.append(make_batch(1, start=i), told.append) for i in (2, 3, 4)]
    assert [i.base_offset for i in infos] == [2, 3, 4]
    assert part.log_end_offset == 5
    assert part.holding
    assert segment_file.stat().st_size == size  # nothing written yet
    assert told == []

    part.write_held()
    assert told == [None]  # once for the three
    assert not part.holding
    assert segment_file.stat().st_size > size
    assert ids(part) == [f"r:{i:08d}" for i in range(5)]
    log.close()
    reopened = LogManager(data_dir, exclusive=True)
    assert ids(reopened.partition("t", 0)) == [f"r:{i:08d}" for i in range(5)]
    reopened.close()


def test_a_batch_with_a_producer_id_writes_the_held_ones_first(log: LogManager) -> None:
    part = log.partition("t", 0)
    told: list[KafkaStorageError | None] = []
    part.append(make_batch(1, start=0), told.append)
    part.append(make_batch(1, start=1), told.append)
    info = part.append(make_batch(1, start=2, producer_id=7, producer_epoch=0, base_sequence=0),
                       told.append)
    assert told == [None]  # written before it, and it was not held
    assert info.base_offset == 2
    assert not part.holding
    assert ids(part) == [f"r:{i:08d}" for i in range(3)]


def test_a_roll_writes_the_held_ones_first(log: LogManager) -> None:
    log.alter_topic_config("t", {"segment.bytes": "1000"})
    part = log.partition("t", 0)
    told: list[KafkaStorageError | None] = []
    for i in range(12):  # ~170 bytes each: two rolls
        part.append(make_batch(1, start=i), told.append)
    part.write_held()
    assert len(part.segments) == 3
    assert told == [None, None, None]  # at each roll, and at the end
    assert ids(part) == [f"r:{i:08d}" for i in range(12)]


def test_write_held_without_held_batches_does_nothing(log: LogManager) -> None:
    part = log.partition("t", 0)
    part.append(make_batch(1))
    part.write_held()
    assert ids(part) == ["r:00000000"]
