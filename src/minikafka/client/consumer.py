"""The embedded consumer: reads a data directory directly, alone or as part of a group."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..errors import OffsetOutOfRangeError, UnknownTopicOrPartitionError
from ..log import LEADER_EPOCH, LogManager, OffsetAndMetadata
from ..records import BatchHeader, Headers, decode_batches
from .membership import GroupMembership, TopicPartition

FETCH_MAX_BYTES = 1024 * 1024
POLL_INTERVAL = 0.005
REBALANCE_INTERVAL = 0.25


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp: int


class _AbortedRanges:
    """Which batches a read_committed reader skips, as Kafka's fetcher decides: a producer's
    transactional batches from the first offset of its aborted transaction up to its ABORT
    marker; control batches (markers) always."""

    def __init__(self, aborted: list[tuple[int, int]]) -> None:
        self._pending = sorted(aborted, key=lambda a: a[1])  # (producer id, first offset)
        self._aborting: set[int] = set()

    def skips(self, header: BatchHeader) -> bool:
        while self._pending and self._pending[0][1] <= header.last_offset:
            self._aborting.add(self._pending.pop(0)[0])
        if header.is_control:
            self._aborting.discard(header.producer_id)  # a marker ends its transaction
            return True
        return header.is_transactional and header.producer_id in self._aborting


class Consumer:
    """Reads topics from a data directory.

    With a `group_id`, partitions are shared among the live consumers of that group (each read by
    one at a time) and positions are committed, so a restarted consumer resumes where the group
    left off. Without one, it reads every partition and commits nothing.

    `isolation_level="read_committed"` reads only up to the last stable offset and skips the
    records of aborted transactions (Kafka's default, kept here, is read_uncommitted).
    """

    def __init__(self, data_dir: str | os.PathLike[str], *topics: str, group_id: str | None = None,
                 auto_offset_reset: str = "latest", enable_auto_commit: bool = True,
                 auto_commit_interval_ms: int = 5000,
                 isolation_level: str = "read_uncommitted") -> None:
        if auto_offset_reset not in ("earliest", "latest"):
            raise ValueError("auto_offset_reset must be 'earliest' or 'latest'")
        if isolation_level not in ("read_uncommitted", "read_committed"):
            raise ValueError("isolation_level must be 'read_uncommitted' or 'read_committed'")
        self.read_committed = isolation_level == "read_committed"
        self.log = LogManager(data_dir)
        self.group_id = group_id
        self.auto_offset_reset = auto_offset_reset
        self.enable_auto_commit = enable_auto_commit and group_id is not None
        self.auto_commit_interval = auto_commit_interval_ms / 1000
        self._membership = GroupMembership(self.log.data_dir, group_id) if group_id else None
        self._topics: list[str] = []
        self._manual = False
        self._positions: dict[TopicPartition, int] = {}
        self._consumed: dict[TopicPartition, int] = {}  # position after the last returned record
        self._next_rebalance = 0.0
        self._next_commit = time.monotonic() + self.auto_commit_interval
        self._buffer: list[Message] = []
        if topics:
            self.subscribe(topics)

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- assignment -------------------------------------------------------------------------------

    def subscribe(self, topics: Iterable[str]) -> None:
        self._topics = list(topics)
        self._manual = False
        self._next_rebalance = 0.0

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions, outside any group's sharing (as Kafka's assign())."""
        self._manual = True
        self._positions = {tp: self._initial_position(tp, None) for tp in partitions}
        self._consumed = {}
        self._buffer = []

    def assignment(self) -> list[TopicPartition]:
        self._maybe_rebalance()
        return sorted(self._positions)

    def _all_partitions(self) -> list[TopicPartition]:
        found = []
        for topic in self._topics:
            try:
                count = self.log.topic_config(topic).partitions
            except UnknownTopicOrPartitionError:
                continue
            found += [(topic, p) for p in range(count)]
        return found

    def _maybe_rebalance(self) -> None:
        now = time.monotonic()
        if self._manual or now < self._next_rebalance:
            return
        self._next_rebalance = now + REBALANCE_INTERVAL
        partitions = self._all_partitions()
        if self._membership is None:
            for tp in partitions:
                if tp not in self._positions:
                    self._positions[tp] = self._initial_position(tp, committed=None)
            return
        gained, to_release = self._membership.rebalance(partitions)
        if to_release:
            if self.enable_auto_commit:
                self.commit(to_release)
            self._membership.release(to_release)
            for tp in to_release:
                self._positions.pop(tp, None)
                self._consumed.pop(tp, None)
            self._buffer = [m for m in self._buffer if (m.topic, m.partition) in self._positions]
        if gained:
            committed = self.log.offsets.fetch(self.group_id or "", gained)
            for tp in gained:
                self._positions[tp] = self._initial_position(tp, committed.get(tp))

    def _initial_position(self, tp: TopicPartition, committed: OffsetAndMetadata | None) -> int:
        partition = self.log.partition(*tp)
        if committed is not None and (partition.log_start_offset <= committed.offset
                                      <= partition.high_watermark):
            return committed.offset
        if self.auto_offset_reset == "earliest":
            return partition.log_start_offset
        return partition.high_watermark

    # --- reading ----------------------------------------------------------------------------------

    def poll(self, timeout: float = 1.0, max_records: int = 500) -> list[Message]:
        """Up to `max_records` messages, waiting up to `timeout` seconds for the first."""
        deadline = time.monotonic() + timeout
        while True:
            self._maybe_rebalance()
            if not self._buffer:
                self._fetch()
            if self._buffer:
                out, self._buffer = self._buffer[:max_records], self._buffer[max_records:]
                for m in out:
                    self._consumed[(m.topic, m.partition)] = m.offset + 1
                # A partition whose fetched records are all out is consumed up to its fetch
                # position, past any marker after its last record (the buffer holds one fetch,
                # partition after partition: only the first one left can still be pending).
                pending = (self._buffer[0].topic, self._buffer[0].partition) if self._buffer \
                    else None
                for tp in {(m.topic, m.partition) for m in out}:
                    if tp != pending:
                        self._consumed[tp] = self._positions[tp]
                self._maybe_auto_commit()
                return out
            self._maybe_auto_commit()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            time.sleep(min(POLL_INTERVAL, remaining))

    def __iter__(self) -> Iterator[Message]:
        while True:
            yield from self.poll()

    def _fetch(self) -> None:
        for tp, position in list(self._positions.items()):
            partition = self.log.partition(*tp)
            try:
                upper = partition.last_stable_offset if self.read_committed else None
                found = partition.read(position, FETCH_MAX_BYTES, upper)
            except OffsetOutOfRangeError:
                self._positions[tp] = (partition.log_start_offset
                                       if self.auto_offset_reset == "earliest"
                                       else partition.high_watermark)
                continue
            if found is None:
                continue
            aborted = _AbortedRanges(partition.aborted_transactions(position, found.next_offset)
                                     if self.read_committed else [])
            topic, index = tp
            buffered = len(self._buffer)
            for batch in decode_batches(found.read()):
                if not aborted.skips(batch.header):  # nor is a marker a record
                    self._buffer.extend(
                        Message(topic, index, r.offset, r.key, r.value, r.headers,
                                r.timestamp or 0)
                        for r in batch.records if r.offset >= position
                    )
                self._positions[tp] = batch.header.next_offset
            if len(self._buffer) == buffered:  # markers only: consumed by being read
                self._consumed[tp] = self._positions[tp]

    # --- positions and commits --------------------------------------------------------------------

    def position(self, topic: str, partition: int) -> int:
        return self._consumed.get((topic, partition), self._positions[(topic, partition)])

    def seek(self, topic: str, partition: int, offset: int) -> None:
        self._positions[(topic, partition)] = offset
        self._consumed[(topic, partition)] = offset
        self._buffer = [m for m in self._buffer if (m.topic, m.partition) != (topic, partition)]

    def seek_to_beginning(self) -> None:
        for topic, index in self.assignment():
            self.seek(topic, index, self.log.partition(topic, index).log_start_offset)

    def seek_to_end(self) -> None:
        for topic, index in self.assignment():
            self.seek(topic, index, self.log.partition(topic, index).high_watermark)

    def seek_to_timestamp(self, timestamp_ms: int) -> None:
        """Each partition to its first record at or after the time (the end if none)."""
        for topic, index in self.assignment():
            partition = self.log.partition(topic, index)
            found = partition.offset_for_timestamp(timestamp_ms)
            self.seek(topic, index, partition.high_watermark if found is None else found[0])

    def committed(self, topic: str, partition: int) -> int | None:
        if self.group_id is None:
            return None
        found = self.log.offsets.fetch(self.group_id, [(topic, partition)])
        return found[(topic, partition)].offset if found else None

    def commit(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Commit the position after the last record returned by `poll` for each partition."""
        wanted = self._consumed if partitions is None else {
            tp: self._consumed[tp] for tp in partitions if tp in self._consumed}
        self.commit_offsets(wanted)

    def commit_offsets(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit explicit positions: the offset of the next record to read, per partition."""
        if self.group_id is None:
            raise ValueError("commit needs a consumer created with a group_id")
        self.log.offsets.commit(self.group_id, {
            tp: OffsetAndMetadata(pos, LEADER_EPOCH) for tp, pos in offsets.items()})

    def _maybe_auto_commit(self) -> None:
        if self.enable_auto_commit and time.monotonic() >= self._next_commit:
            self._next_commit = time.monotonic() + self.auto_commit_interval
            self.commit()

    def close(self) -> None:
        if self.enable_auto_commit and self._consumed:
            self.commit()
        if self._membership is not None:
            self._membership.leave()
        self.log.close()
