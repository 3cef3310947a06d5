"""Idempotent-producer bookkeeping for one partition (Kafka's ProducerStateManager).

For each producer id we keep its epoch and the last five batches' sequence ranges, so a retried
batch is answered with its original offsets and a gap is refused. The state is rebuilt on open from
a snapshot plus the batch headers after it, so it survives restarts and crashes alike. A producer
whose last batch is `producer.id.expiration.ms` old is forgotten, as in Kafka: clients that take a
new id per instance (Java's) would otherwise grow the state, and every snapshot, without bound.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ErrorCode, KafkaError
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


def _last_sequence(header: BatchHeader) -> int:
    return (header.base_sequence + header.last_offset_delta) % (INT32_MAX + 1)


class ProducerStateManager:
    def __init__(self, snapshot_path: Path,
                 expiration_ms: int = PRODUCER_ID_EXPIRATION_MS) -> None:
        self.snapshot_path = snapshot_path
        self.expiration_ms = expiration_ms
        self.producers: dict[int, _Producer] = {}

    def remove_expired(self, now_ms: int) -> int:
        """Forget producers whose last batch's timestamp is `expiration_ms` old (Kafka's
        removeExpiredProducers); return how many."""
        cutoff = now_ms - self.expiration_ms
        expired = [pid for pid, p in self.producers.items()
                   if not p.batches or p.batches[-1].timestamp <= cutoff]
        for pid in expired:
            del self.producers[pid]
        return len(expired)

    def check(self, header: BatchHeader) -> _BatchMeta | None:
        """Before an append: the original batch if this one is a retry; raises on a gap or a
        fenced epoch; None if the batch is new."""
        state = self.producers.get(header.producer_id)
        if state is None:
            return None
        if header.producer_epoch < state.epoch:
            raise InvalidProducerEpochError(
                f"producer {header.producer_id} epoch {header.producer_epoch} is older than "
                f"{state.epoch}"
            )
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

    def update(self, header: BatchHeader) -> None:
        """After an append (or while replaying the log on open)."""
        if header.producer_id < 0 or header.base_sequence < 0:
            return
        state = self.producers.get(header.producer_id)
        if state is None or header.producer_epoch > state.epoch:
            state = self.producers[header.producer_id] = _Producer(header.producer_epoch)
        state.batches.append(_BatchMeta(header.base_sequence, _last_sequence(header),
                                        header.base_offset, header.last_offset,
                                        header.max_timestamp))

    def load_snapshot(self, log_end_offset: int) -> int:
        """Load the snapshot; return the offset to replay headers from. The snapshot only saves
        work: one that is missing, damaged or past the log end means replaying it all (0)."""
        try:
            data = json.loads(self.snapshot_path.read_text())
            offset = int(data["offset"])
            producers = {
                int(pid): _Producer(int(p["epoch"]), deque((_BatchMeta(*b) for b in p["batches"]),
                                                           maxlen=WINDOW))
                for pid, p in data["producers"].items()
            }
        except (OSError, ValueError, LookupError, TypeError, AttributeError):
            return 0
        if offset > log_end_offset:
            return 0  # the log was cut below the snapshot (recovery): replay everything
        self.producers = producers
        return offset

    def write_snapshot(self, offset: int) -> None:
        data = {
            "offset": offset,
            "producers": {
                str(pid): {"epoch": p.epoch,
                           "batches": [[b.first_seq, b.last_seq, b.base_offset, b.last_offset,
                                        b.timestamp] for b in p.batches]}
                for pid, p in self.producers.items()
            },
        }
        write_atomically(self.snapshot_path, json.dumps(data))
