"""The transaction coordinator of a data directory shared by embedded processes.

The broker's coordinator state machine (`txn/coordinator.py`, sans-I/O: Kafka's states and
transition table) decides; its transaction log (`txn/log.py`, `__meta/transactions.log`)
stores. Both live outside `broker/`, so embedded clients do not load the asyncio server. Each
step runs under an exclusive `flock` on `__meta/transactions.lock`: the coordinator is loaded
from the log as the other processes left it, decides, and every change is in the log before it
takes effect, as on the broker: Ongoing with its partitions before a batch
goes to one, Prepare* before the first marker, Complete* after the last.

Whoever takes the lock first finishes what a dead process left (a Prepare* is never left by a
live one: the whole end runs under the lock) and aborts timed-out transactions, fencing their
producer; `init` aborts the previous epoch's ongoing transaction of its id. So a SIGKILL at any
point leaves each transaction committed on all its partitions or aborted on all, once the
directory is next used by a transactional producer or a broker.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Collection, Iterator
from contextlib import contextmanager

from ..clock import wall_ms
from ..errors import ErrorCode, KafkaError, ProducerFencedError, UnknownTopicOrPartitionError
from ..log import LogManager
from ..log.offsets import TopicPartition
from ..log.producer_ids import ProducerIdManager
from ..log.producer_state import InvalidProducerEpochError
from ..txn.coordinator import TransactionCoordinator, Transit, TxnCheck, TxnState
from ..txn.log import FILE_NAME, TransactionLog

LOCK_FILE = "transactions.lock"
TRANSACTIONS_FILE = FILE_NAME
COORDINATOR_EPOCH = 0


def raise_for(error: ErrorCode, what: str) -> None:
    if error is ErrorCode.PRODUCER_FENCED:
        raise ProducerFencedError(f"{what}: a newer producer with this transactional id "
                                  "fenced this one")
    if error is not ErrorCode.NONE:
        raise KafkaError(f"{what}: {error.name}", error)


class EmbeddedCoordinator:
    """Transactional ids' state for embedded producers (and their recovery)."""

    def __init__(self, log: LogManager) -> None:
        self._log = log
        self._durable = log.flush_policy.mode == "always"
        self._txn_log = TransactionLog.in_meta_dir(log.meta_dir)
        self._lock_fd = os.open(log.meta_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)

    @contextmanager
    def _locked(self) -> Iterator[TransactionCoordinator]:
        """The coordinator as the log holds it, alone, with dead processes' work finished."""
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            coordinator = TransactionCoordinator()
            for transit in self._txn_log.transactions():
                coordinator.load(transit)
            for transit in coordinator.unfinished():
                self._finish(coordinator, transit)
            for transit in coordinator.timed_out(wall_ms()):
                self._end(coordinator, transit)
            yield coordinator
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _write(self, coordinator: TransactionCoordinator, transit: Transit) -> None:
        self._txn_log.write(transit)
        if self._durable:
            self._txn_log.flush()
        coordinator.complete(transit, keep_pending=transit.state.preparing)

    def _end(self, coordinator: TransactionCoordinator, prepare: Transit) -> None:
        self._write(coordinator, prepare)
        self._finish(coordinator, prepare)

    def _finish(self, coordinator: TransactionCoordinator, prepare: Transit) -> None:
        """Prepare* is stored: a marker on every partition of the transaction, then Complete*."""
        for topic, index in sorted(prepare.partitions):
            try:
                partition = self._log.partition(topic, index)
                partition.write_marker(prepare.producer_id, prepare.producer_epoch,
                                       prepare.commit, COORDINATOR_EPOCH)
            except (UnknownTopicOrPartitionError, InvalidProducerEpochError):
                continue  # deleted, or a newer epoch's marker is there: not ours to end
            if self._durable:
                partition.flush()
        self._write(coordinator, coordinator.prepare_complete(prepare.transactional_id,
                                                              wall_ms()))

    def recover(self) -> None:
        """Finish what dead processes left and abort timed-out transactions."""
        with self._locked():
            pass

    def init(self, transactional_id: str, timeout_ms: int) -> tuple[int, int]:
        """A producer id and a new epoch for the id (fencing earlier holders); an ongoing
        transaction of the previous epoch is aborted first."""
        with self._locked() as coordinator:
            while True:
                result = coordinator.init_producer_id(
                    transactional_id, timeout_ms, None, wall_ms(),
                    lambda: ProducerIdManager(self._log.meta_dir).allocate())
                raise_for(result.error, f"transactional id {transactional_id!r}")
                if result.transit is None or not result.fence:
                    break
                self._end(coordinator, result.transit)  # then ask again, for the next epoch
            if result.transit is not None:
                self._write(coordinator, result.transit)
            current = coordinator.get(transactional_id)
            assert current is not None and current.state is not TxnState.ONGOING
            return current.producer_id, current.producer_epoch

    def add_partitions(self, check: TxnCheck, partitions: Collection[TopicPartition]) -> None:
        with self._locked() as coordinator:
            decided = coordinator.add_partitions(check, partitions, wall_ms())
            if isinstance(decided, ErrorCode):
                raise_for(decided, f"adding {sorted(partitions)} to the transaction")
            else:
                self._write(coordinator, decided)

    def end(self, check: TxnCheck, commit: bool) -> None:
        """Commit or abort the producer's ongoing transaction, markers and all."""
        with self._locked() as coordinator:
            decided = coordinator.end_transaction(check, commit, wall_ms())
            if isinstance(decided, ErrorCode):
                raise_for(decided, "commit" if commit else "abort")
            else:
                self._end(coordinator, decided)

    def close(self) -> None:
        self._txn_log.close()
        os.close(self._lock_fd)
