"""Committed consumer offsets: (group, topic, partition) -> (offset, leader epoch, metadata).

Stored as a `FramedLog` (`framed.py`): one CRC-framed record per commit, keyed by group, so a
crash keeps all of a commit or none of it; several processes may commit at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..clock import wall_ms
from .framed import FramedLog, frame

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp: int = 0


class OffsetStore(FramedLog):
    """`fsync=True` syncs each commit before it returns; a broker instead shares one fsync among
    concurrent commits by calling `flush`."""

    _offsets: dict[str, dict[TopicPartition, OffsetAndMetadata]]

    def _reset(self) -> None:
        self._offsets = {}

    def _apply(self, key: str, value: Any) -> int:
        group = self._offsets.setdefault(key, {})
        for topic, partition, offset, epoch, metadata, ts in value:
            if offset < 0:
                group.pop((topic, partition), None)
            else:
                group[(topic, partition)] = OffsetAndMetadata(offset, epoch, metadata, ts)
        if not group:
            del self._offsets[key]
        return len(value)

    def _live_entries(self) -> int:
        return sum(len(g) for g in self._offsets.values())

    def _live_frames(self) -> Iterator[bytes]:
        for group, offsets in self._offsets.items():
            yield frame(group, [[t, p, o.offset, o.leader_epoch, o.metadata, o.commit_timestamp]
                                for (t, p), o in offsets.items()])

    # --- public API -------------------------------------------------------------------------------

    def commit(self, group: str, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        """Store all of `offsets` at once: one frame, so a crash keeps all or none of them."""
        now = wall_ms()
        rows = [[t, p, o.offset, o.leader_epoch, o.metadata or "", o.commit_timestamp or now]
                for (t, p), o in offsets.items()]
        if rows:
            self._append(group, rows)

    def fetch(self, group: str, partitions: Iterable[TopicPartition] | None = None
              ) -> dict[TopicPartition, OffsetAndMetadata]:
        with self._mutex:
            self._refresh()
            stored = self._offsets.get(group, {})
            if partitions is None:
                return dict(stored)
            return {tp: stored[tp] for tp in partitions if tp in stored}

    def groups(self) -> list[str]:
        with self._mutex:
            self._refresh()
            return sorted(self._offsets)

    def delete(self, group: str, partitions: Iterable[TopicPartition] | None = None) -> None:
        with self._mutex:
            targets = list(self.fetch(group, partitions))
        if targets:
            self._append(group, [[t, p, -1, -1, "", 0] for t, p in targets])

    def delete_topic(self, topic: str) -> None:
        for group in self.groups():
            self.delete(group, [tp for tp in self.fetch(group) if tp[0] == topic])

    def expire(self, older_than_ms: int, groups: Iterable[str] | None = None) -> int:
        """Drop commits older than the cutoff (offsets.retention.minutes), of `groups` or of
        every group; returns how many."""
        dropped = 0
        for group in self.groups() if groups is None else groups:
            old = [tp for tp, o in self.fetch(group).items() if o.commit_timestamp < older_than_ms]
            if old:
                self.delete(group, old)
                dropped += len(old)
        return dropped
