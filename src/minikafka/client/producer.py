"""The embedded producer: records straight into a data directory, no server in between."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from typing import NamedTuple

from ..compression import Compression
from ..log import FlushPolicy, LogManager
from ..partitioner import Partitioner
from ..records import Headers, Record, encode_batch
from ._common import RecordLike, as_bytes, auto_create


class Sent(NamedTuple):
    """Where a record landed."""

    partition: int
    offset: int


class Producer:
    """Writes records to topics in a data directory.

    `send` writes one record and returns its (partition, offset) once it is in the log; `send_many`
    batches records per partition (up to `batch_size` per RecordBatch) for throughput. With flush
    policy `always`, each call also waits for fsync.
    """

    def __init__(self, data_dir: str | os.PathLike[str], *, partitioner: str = "murmur2",
                 compression: str | Compression | None = None, batch_size: int = 1000,
                 flush_policy: str | FlushPolicy = "never", auto_create_topics: bool = True,
                 default_partitions: int = 1) -> None:
        self.log = LogManager(data_dir, flush_policy=flush_policy)
        self.partitioner = Partitioner(partitioner)
        self.compression = Compression.parse(compression)
        self.batch_size = batch_size
        self.auto_create_topics = auto_create_topics
        self.default_partitions = default_partitions

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def partitions_for(self, topic: str) -> int:
        return auto_create(self.log, topic, self.auto_create_topics,
                           self.default_partitions).partitions

    def send(self, topic: str, value: bytes | str | None, key: bytes | str | None = None, *,
             headers: Headers = (), timestamp: int | None = None,
             partition: int | None = None) -> Sent:
        return self.send_many(topic, [(key, value, headers, timestamp)], partition=partition)[0]

    def send_many(self, topic: str, records: Iterable[RecordLike | Record], *,
                  partition: int | None = None) -> list[Sent]:
        """Append many records; returns where each one went, in the order given."""
        count = self.partitions_for(topic)
        by_partition: dict[int, list[tuple[int, Record]]] = defaultdict(list)
        n = 0
        for n, item in enumerate(records):
            record = item if isinstance(item, Record) else _to_record(item)
            target = self.partitioner(record.key, count) if partition is None else partition
            by_partition[target].append((n, record))
        results: list[Sent] = [Sent(-1, -1)] * (n + 1 if by_partition else 0)
        always = self.log.flush_policy.mode == "always"
        for p, items in by_partition.items():
            log = self.log.partition(topic, p)
            for start in range(0, len(items), self.batch_size):
                chunk = items[start : start + self.batch_size]
                batch = encode_batch([r for _, r in chunk], compression=self.compression)
                base = log.append(batch).base_offset
                for delta, (position, _record) in enumerate(chunk):
                    results[position] = Sent(p, base + delta)
            if always:
                log.flush()
        return results

    def flush(self) -> None:
        self.log.flush()

    def close(self) -> None:
        self.log.close()


def _to_record(item: RecordLike) -> Record:
    key, value, headers, timestamp = item
    return Record(as_bytes(value), as_bytes(key), headers or (), timestamp)
