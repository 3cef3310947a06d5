"""Idempotent and transactional producer bookkeeping for one partition (Kafka's
ProducerStateManager).

For each producer id we keep its epoch and the last five batches' sequence ranges, so a retried
batch is answered with its original offsets and a gap is refused. A transactional producer also
has its ongoing transaction's first offset here (its first transactional batch starts it, a
COMMIT or ABORT marker ends it) and the coordinator epoch of its last marker. The state is rebuilt
on open from a snapshot plus the batch headers (and markers) after it, so it survives restarts
and crashes alike: a transaction open at a SIGKILL is still open after it. A producer whose last
batch or marker is `producer.id.expiration.ms` old is forgotten, as in Kafka, unless its
transaction is ongoing: clients that take a new id per instance (Java's) would otherwise grow the
state, and every snapshot, without bound.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import ErrorCode, InvalidTxnStateError, KafkaError
from ..records import BatchHeader
from .durable import write_atomically

WINDOW = 5
INT32_MAX = 2**31 - 1
PRODUCER_ID_EXPIRATION_MS = 86_400_000  # Kafka's producer.id.expiration.ms default: a day


class OutOfOrderSequenceError(KafkaError):
    code = ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


class InvalidProducerEpochError(KafkaError):
    code = ErrorCode.INVALID_PRODUCER_EPOCH


@dataclass(slots=True)
class _BatchMeta:
    first_seq: int
    last_seq: int
    base_offset: int
    last_offset: int
    timestamp: int


@dataclass(slots=True)
class _Producer:
    epoch: int
    batches: deque[_BatchMeta] = field(default_factory=lambda: deque(maxlen=WINDOW))
    last_timestamp: int = -1  # of its last batch or marker
    coordinator_epoch: int = -1  # of its last marker
    txn_first_offset: int = -1  # its ongoing transaction's first offset; -1: none


class ProducerInfo(NamedTuple):
    """One producer as DescribeProducers reports it."""

    producer_id: int
    producer_epoch: int
    last_sequence: int
    last_timestamp: int
    coordinator_epoch: int
    current_txn_start_offset: int


def _last_sequence(header: BatchHeader) -> int:
    return (header.base_sequence + header.last_offset_delta) % (INT32_MAX + 1)


class ProducerStateManager:
    def __init__(self, snapshot_path: Path,
                 expiration_ms: int = PRODUCER_ID_EXPIRATION_MS) -> None:
        self.snapshot_path = snapshot_path
        self.expiration_ms = expiration_ms
        self.producers: dict[int, _Producer] = {}
        self.ongoing: dict[int, int] = {}  # producer id -> first offset of its open transaction

    def first_unstable_offset(self) -> int | None:
        """The first offset of the oldest ongoing transaction (None: none is ongoing)."""
        return min(self.ongoing.values()) if self.ongoing else None

    def remove_expired(self, now_ms: int) -> int:
        """Forget producers whose last batch's or marker's timestamp is `expiration_ms` old
        (Kafka's removeExpiredProducers), never one with an ongoing transaction; return how
        many."""
        cutoff = now_ms - self.expiration_ms
        expired = [pid for pid, p in self.producers.items()
                   if p.txn_first_offset < 0 and p.last_timestamp <= cutoff]
        for pid in expired:
            del self.producers[pid]
        return len(expired)

    def check(self, header: BatchHeader) -> _BatchMeta | None:
        """Before an append: the original batch if this one is a retry; raises on a gap or a
        fenced epoch; None if the batch is new."""
        state = self.producers.get(header.producer_id)
        if state is None:
            return None
        self.check_epoch(header.producer_id, header.producer_epoch)
        if state.txn_first_offset >= 0 and not header.is_transactional:
            raise InvalidTxnStateError(f"producer {header.producer_id} sent a batch outside its "
                                       "ongoing transaction")
        if header.producer_epoch > state.epoch or not state.batches:
            if header.base_sequence != 0 and header.producer_epoch > state.epoch:
                raise OutOfOrderSequenceError(
                    f"new epoch {header.producer_epoch} must start at sequence 0"
                )
            return None
        last = _last_sequence(header)
        for meta in state.batches:
            if meta.first_seq == header.base_sequence and meta.last_seq == last:
                return meta
        expected = (state.batches[-1].last_seq + 1) % (INT32_MAX + 1)
        if header.base_sequence != expected:
            raise OutOfOrderSequenceError(
                f"producer {header.producer_id}: sequence {header.base_sequence}, "
                f"expected {expected}"
            )
        return None

    def check_epoch(self, producer_id: int, epoch: int) -> None:
        """Raise InvalidProducerEpochError if `epoch` is older than the producer's."""
        state = self.producers.get(producer_id)
        if state is not None and epoch < state.epoch:
            raise InvalidProducerEpochError(
                f"producer {producer_id} epoch {epoch} is older than {state.epoch}")

    def _producer(self, producer_id: int, epoch: int) -> _Producer:
        """The producer's state at `epoch`: a newer epoch starts its sequences afresh (its
        ongoing transaction and coordinator epoch carry over: a marker still ends them)."""
        state = self.producers.get(producer_id)
        if state is None:
            state = self.producers[producer_id] = _Producer(epoch)
        elif epoch > state.epoch:
            state = self.producers[producer_id] = _Producer(
                epoch, last_timestamp=state.last_timestamp,
                coordinator_epoch=state.coordinator_epoch,
                txn_first_offset=state.txn_first_offset)
        return state

    def update(self, header: BatchHeader) -> None:
        """After an append of a data batch (or while replaying the log on open); markers go to
        `complete`."""
        if header.producer_id < 0 or header.base_sequence < 0:
            return
        state = self._producer(header.producer_id, header.producer_epoch)
        state.batches.append(_BatchMeta(header.base_sequence, _last_sequence(header),
                                        header.base_offset, header.last_offset,
                                        header.max_timestamp))
        state.last_timestamp = header.max_timestamp
        if header.is_transactional and state.txn_first_offset < 0:
            state.txn_first_offset = self.ongoing[header.producer_id] = header.base_offset

    def complete(self, header: BatchHeader, coordinator_epoch: int) -> None:
        """After a marker's append (or replay): end the producer's ongoing transaction, if it
        has one here."""
        state = self._producer(header.producer_id, header.producer_epoch)
        state.last_timestamp = header.max_timestamp
        state.coordinator_epoch = coordinator_epoch
        if state.txn_first_offset >= 0:
            state.txn_first_offset = -1
            del self.ongoing[header.producer_id]

    def states(self) -> list[ProducerInfo]:
        return [ProducerInfo(pid, p.epoch, p.batches[-1].last_seq if p.batches else -1,
                             p.last_timestamp, p.coordinator_epoch, p.txn_first_offset)
                for pid, p in self.producers.items()]

    def load_snapshot(self, log_end_offset: int) -> int:
        """Load the snapshot; return the offset to replay headers from. The snapshot only saves
        work: one that is missing, damaged or past the log end means replaying it all (0)."""
        try:
            data = json.loads(self.snapshot_path.read_text())
            offset = int(data["offset"])
            producers = {int(pid): _loaded(p) for pid, p in data["producers"].items()}
        except (OSError, ValueError, LookupError, TypeError, AttributeError):
            return 0
        if offset > log_end_offset:
            return 0  # the log was cut below the snapshot (recovery): replay everything
        self.producers = producers
        self.ongoing = {pid: p.txn_first_offset for pid, p in producers.items()
                        if p.txn_first_offset >= 0}
        return offset

    def clear(self) -> None:
        """Forget every producer (before replaying the whole log)."""
        self.producers = {}
        self.ongoing = {}

    def write_snapshot(self, offset: int) -> None:
        data = {
            "offset": offset,
            "producers": {
                str(pid): {"epoch": p.epoch,
                           "batches": [[b.first_seq, b.last_seq, b.base_offset, b.last_offset,
                                        b.timestamp] for b in p.batches],
                           "last_timestamp": p.last_timestamp,
                           "coordinator_epoch": p.coordinator_epoch,
                           "txn_first_offset": p.txn_first_offset}
                for pid, p in self.producers.items()
            },
        }
        write_atomically(self.snapshot_path, json.dumps(data))


def _loaded(p: Any) -> _Producer:
    """A producer from the snapshot (one written before transactions lacks their fields)."""
    batches = deque((_BatchMeta(*b) for b in p["batches"]), maxlen=WINDOW)
    last = batches[-1].timestamp if batches else -1
    return _Producer(int(p["epoch"]), batches, int(p.get("last_timestamp", last)),
                     int(p.get("coordinator_epoch", -1)), int(p.get("txn_first_offset", -1)))
