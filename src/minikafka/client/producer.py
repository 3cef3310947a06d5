"""The embedded producer: records straight into a data directory, no server in between."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from typing import NamedTuple

from ..compression import Compression
from ..log import FlushPolicy, LogManager
from ..partitioner import Partitioner
from ..records import Headers, Record, RecordRow, encode_batch
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
        """Append many records; returns where each one went, in the order given.

        Keyed records go by the partitioner; keyless ones stick to one partition per
        `batch_size` records (Kafka's sticky partitioning), which keeps batches full."""
        count = self.partitions_for(topic)
        rows: dict[int, list[RecordRow]] = defaultdict(list)
        order: dict[int, list[int]] = defaultdict(list)
        by_key, batch_size = self.partitioner.by_key, self.batch_size
        sticky, keyless = self.partitioner.next_sticky(count), 0
        n = -1
        for n, item in enumerate(records):
            if isinstance(item, Record):
                key, value, headers, timestamp = item.key, item.value, item.headers, item.timestamp
            else:
                key, value, headers, timestamp = item
            if key is not None and key.__class__ is not bytes:
                key = as_bytes(key)
            if value is not None and value.__class__ is not bytes:
                value = as_bytes(value)
            if partition is not None:
                target = partition
            elif key is not None:
                target = by_key(key, count)
            else:
                keyless += 1
                if keyless > batch_size:
                    sticky, keyless = self.partitioner.next_sticky(count), 1
                target = sticky
            rows[target].append((key, value, headers or (), timestamp))
            order[target].append(n)
        results = [Sent(-1, -1)] * (n + 1)
        always = self.log.flush_policy.mode == "always"
        for p, partition_rows in rows.items():
            log = self.log.partition(topic, p)
            positions = order[p]
            for start in range(0, len(partition_rows), batch_size):
                chunk = partition_rows[start : start + batch_size]
                base = log.append(encode_batch(chunk, compression=self.compression)).base_offset
                for delta, position in enumerate(positions[start : start + batch_size]):
                    results[position] = Sent(p, base + delta)
            if always:
                log.flush()
        return results

    def flush(self) -> None:
        self.log.flush()

    def close(self) -> None:
        self.log.close()
