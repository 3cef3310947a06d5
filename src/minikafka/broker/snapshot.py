"""Read-only views of a running broker's state, shared by the web console and the metrics scrape.

They read through the objects the Kafka handlers use (the log manager, its partitions, the
offsets store), from the event loop's thread, so they show exactly what clients are served. This
is the describing half of the service layer; `ops.py` holds the changing half.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import KafkaStorageError, UnknownTopicOrPartitionError
from ..log import LogManager
from ..log.durable import MetadataFileError


@dataclass(frozen=True, slots=True)
class PartitionView:
    topic: str
    partition: int
    log_start_offset: int
    high_watermark: int
    size: int  # bytes of its segment files
    segments: int
    damaged_bytes: int = 0  # damage recovery cut out of its log since it was opened
    last_stable_offset: int = -1  # where read_committed consumers stop (an open transaction)

    @property
    def messages(self) -> int:
        """Records still in the log (offsets are dense: no compaction here)."""
        return self.high_watermark - self.log_start_offset


@dataclass(frozen=True, slots=True)
class CommittedView:
    topic: str
    partition: int
    committed: int
    high_watermark: int

    @property
    def lag(self) -> int:
        return max(self.high_watermark - self.committed, 0)


def topic_partitions(log: LogManager, topic: str) -> list[PartitionView]:
    """Every partition of `topic` (opening those no client has touched yet); raises
    UnknownTopicOrPartitionError for a topic that does not exist."""
    views = []
    for index in range(log.topic_config(topic).partitions):
        p = log.partition(topic, index)
        segments = p.segments
        views.append(PartitionView(topic, index, p.log_start_offset, p.high_watermark,
                                   sum(s.size for s in segments), len(segments), p.damaged_bytes,
                                   p.last_stable_offset))
    return views


def all_partitions(log: LogManager) -> dict[str, list[PartitionView]]:
    """Topic -> its partitions, skipping topics deleted while we looked, those whose config is
    damaged (the broker logged those), and those with a partition that cannot be opened yet (its
    files cannot be created: no inode left)."""
    found = {}
    for topic in log.topics():
        try:
            found[topic] = topic_partitions(log, topic)
        except (UnknownTopicOrPartitionError, KafkaStorageError, MetadataFileError):
            continue
    return found


def committed_offsets(log: LogManager, group: str) -> list[CommittedView]:
    """The group's committed offsets with their partitions' ends, sorted by topic and partition;
    commits of partitions that no longer exist are left out."""
    views = []
    for (topic, index), committed in sorted(log.offsets.fetch(group).items()):
        try:
            end = log.partition(topic, index).high_watermark
        except UnknownTopicOrPartitionError:
            continue
        views.append(CommittedView(topic, index, committed.offset, end))
    return views
