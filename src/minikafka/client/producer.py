"""The embedded producer: records straight into a data directory, no server in between."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

from ..compression import Compression
from ..errors import InvalidTxnStateError, ProducerFencedError
from ..log import FlushPolicy, LogManager, Partition
from ..log.producer_state import InvalidProducerEpochError
from ..partitioner import Partitioner
from ..records import Headers, Record, RecordRow, encode_batch
from ..txn.coordinator import TxnCheck
from ._common import RecordLike, as_bytes, auto_create
from .transactions import TRANSACTIONS_FILE, EmbeddedCoordinator


class Sent(NamedTuple):
    """Where a record landed."""

    partition: int
    offset: int


class Producer:
    """Writes records to topics in a data directory.

    `send` writes one record and returns its (partition, offset) once it is in the log; `send_many`
    batches records per partition (up to `batch_size` per RecordBatch) for throughput. With flush
    policy `always`, each call also waits for fsync.

    With a `transactional_id`, records are sent inside `with producer.transaction():` only, and
    become visible to read_committed consumers all together when the block ends, or never if it
    raises. The first transaction fences any earlier producer with the same id (its next send or
    commit raises ProducerFencedError) and aborts the transaction it left open.
    """

    def __init__(self, data_dir: str | os.PathLike[str], *, partitioner: str = "murmur2",
                 compression: str | Compression | None = None, batch_size: int = 1000,
                 flush_policy: str | FlushPolicy = "never", auto_create_topics: bool = True,
                 default_partitions: int = 1, transactional_id: str | None = None,
                 transaction_timeout_ms: int = 60_000) -> None:
        self.log = LogManager(data_dir, flush_policy=flush_policy)
        self.transactional_id = transactional_id
        self.transaction_timeout_ms = transaction_timeout_ms
        self._coordinator: EmbeddedCoordinator | None = None
        if transactional_id is not None or (self.log.meta_dir / TRANSACTIONS_FILE).exists():
            self._coordinator = EmbeddedCoordinator(self.log)
            self._coordinator.recover()  # what dead producers left, and timed-out transactions
        self._txn: TxnCheck | None = None  # producer id and epoch, once initialized
        self._sequences: dict[tuple[str, int], int] = {}  # next sequence per partition
        self._in_txn: set[tuple[str, int]] | None = None  # the open transaction's partitions
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
        self._join_transaction([(topic, p) for p in rows])
        for p, partition_rows in rows.items():
            log = self.log.partition(topic, p)
            positions = order[p]
            for start in range(0, len(partition_rows), batch_size):
                chunk = partition_rows[start : start + batch_size]
                base = self._append(log, (topic, p), chunk)
                for delta, position in enumerate(positions[start : start + batch_size]):
                    results[position] = Sent(p, base + delta)
            if always:
                log.flush()
        return results

    def _append(self, log: Partition, tp: tuple[str, int], chunk: list[RecordRow]) -> int:
        if self._txn is None:
            return log.append(encode_batch(chunk, compression=self.compression)).base_offset
        sequence = self._sequences.get(tp, 0)
        batch = encode_batch(chunk, compression=self.compression,
                             producer_id=self._txn.producer_id,
                             producer_epoch=self._txn.producer_epoch, base_sequence=sequence,
                             transactional=True)
        try:
            base = log.append(batch).base_offset
        except InvalidProducerEpochError as exc:
            raise ProducerFencedError(f"transactional id {self.transactional_id!r}: a newer "
                                      f"producer fenced this one ({exc})") from exc
        self._sequences[tp] = (sequence + len(chunk)) & 0x7FFFFFFF  # wraps as Kafka's
        return base

    # --- transactions -----------------------------------------------------------------------------

    def _join_transaction(self, partitions: list[tuple[str, int]]) -> None:
        """Sending needs the open transaction of a transactional producer, and its partitions
        in the transaction log before the first batch goes to one."""
        if self.transactional_id is None:
            return
        if self._in_txn is None or self._txn is None or self._coordinator is None:
            raise InvalidTxnStateError("a transactional producer sends inside "
                                       "`with producer.transaction():` only")
        new = [tp for tp in partitions if tp not in self._in_txn]
        if new:
            self._coordinator.add_partitions(self._txn, new)
            self._in_txn.update(new)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Records sent in the block are committed together when it ends, or aborted if it
        raises (the exception goes on)."""
        if self.transactional_id is None or self._coordinator is None:
            raise ValueError("transactions need a Producer created with a transactional_id")
        if self._in_txn is not None:
            raise InvalidTxnStateError("a transaction is already open")
        if self._txn is None:
            pid, epoch = self._coordinator.init(self.transactional_id,
                                                self.transaction_timeout_ms)
            self._txn = TxnCheck(self.transactional_id, pid, epoch)
        self._in_txn = set()
        try:
            yield
        except BaseException:
            self._end(commit=False)
            raise
        self._end(commit=True)

    def _end(self, commit: bool) -> None:
        assert self._txn is not None and self._coordinator is not None
        partitions, self._in_txn = self._in_txn, None
        if partitions:  # nothing sent: nothing to end
            self._coordinator.end(self._txn, commit)

    def flush(self) -> None:
        self.log.flush()

    def close(self) -> None:
        if self._coordinator is not None:
            self._coordinator.close()
        self.log.close()
