"""The transaction coordinator (KIP-98, KIP-447, KIP-360/588), as a pure state machine.

Sans-I/O like `groups.py`: no files, no tasks; every call takes `now_ms` (wall-clock
milliseconds: transaction timeouts must outlive a restart). A request that changes a
transactional id does not change it at once: it returns a `Transit`, the metadata as it would
become, and marks the id pending; the caller writes the transit to the transaction log and then
`complete`s it (or `abandon`s it when the write failed). Meanwhile other requests for that id are
answered CONCURRENT_TRANSACTIONS, as Kafka answers while its log append is in flight. Writing
markers is the caller's part (`ops.end_transaction`).

States and transitions are Kafka's (TransactionState; `TxnState.previous` holds them and every
change is checked against it):
  Empty --AddPartitions/AddOffsets--> Ongoing --EndTxn--> PrepareCommit | PrepareAbort
  --markers written--> CompleteCommit | CompleteAbort --AddPartitions--> Ongoing ...
  Ongoing --InitProducerId or timeout--> PrepareEpochFence (epoch bumped) --> PrepareAbort
  Empty/Complete* --transactional.id.expiration.ms--> Dead (the id is forgotten)

The coordinator answers each case as Kafka's TransactionCoordinator does; the handlers turn
PRODUCER_FENCED into INVALID_PRODUCER_EPOCH for request versions older than KIP-588's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum

from ..errors import ErrorCode
from ..log.offsets import OffsetAndMetadata, TopicPartition

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
MAX_EPOCH = 32767  # Short.MaxValue: an epoch at MAX_EPOCH - 1 or more is exhausted


class TxnState(StrEnum):
    """Transaction states, spelled as DescribeTransactions and ListTransactions report them."""

    EMPTY = "Empty"
    ONGOING = "Ongoing"
    PREPARE_COMMIT = "PrepareCommit"
    PREPARE_ABORT = "PrepareAbort"
    COMPLETE_COMMIT = "CompleteCommit"
    COMPLETE_ABORT = "CompleteAbort"
    PREPARE_EPOCH_FENCE = "PrepareEpochFence"
    DEAD = "Dead"

    @property
    def previous(self) -> frozenset[TxnState]:
        """The states a transaction may enter this one from (Kafka's validPreviousStates)."""
        return _PREVIOUS[self]

    @property
    def preparing(self) -> bool:
        return self in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT)

    @property
    def complete(self) -> bool:
        return self in (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)


_S = TxnState
_PREVIOUS: dict[TxnState, frozenset[TxnState]] = {
    _S.EMPTY: frozenset({_S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
    _S.ONGOING: frozenset({_S.ONGOING, _S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
    _S.PREPARE_COMMIT: frozenset({_S.ONGOING}),
    _S.PREPARE_ABORT: frozenset({_S.ONGOING, _S.PREPARE_EPOCH_FENCE}),
    _S.COMPLETE_COMMIT: frozenset({_S.PREPARE_COMMIT}),
    _S.COMPLETE_ABORT: frozenset({_S.PREPARE_ABORT}),
    _S.PREPARE_EPOCH_FENCE: frozenset({_S.ONGOING}),
    _S.DEAD: frozenset({_S.EMPTY, _S.COMPLETE_COMMIT, _S.COMPLETE_ABORT}),
}


class IllegalStateTransition(AssertionError):
    """A bug in the coordinator: a transaction was about to take a transition Kafka never
    takes."""


def epoch_exhausted(epoch: int) -> bool:
    return epoch >= MAX_EPOCH - 1


@dataclass(frozen=True, slots=True)
class TxnConfig:
    """Coordinator settings, named after Kafka's broker configs (same defaults)."""

    max_timeout_ms: int = 900_000  # transaction.max.timeout.ms
    id_expiration_ms: int = 604_800_000  # transactional.id.expiration.ms


@dataclass(frozen=True, slots=True)
class Transit:
    """A transactional id's metadata as a request would leave it: written to the transaction
    log, then made current by `complete`."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    last_producer_id: int
    last_producer_epoch: int
    timeout_ms: int
    state: TxnState
    partitions: frozenset[TopicPartition]
    start_ms: int  # when the ongoing transaction began (-1: none)
    update_ms: int
    groups: frozenset[str] = frozenset()  # consumer groups added by AddOffsetsToTxn
    # Offsets committed in the transaction (TxnOffsetCommit), visible only once it commits.
    offsets: tuple[tuple[str, TopicPartition, OffsetAndMetadata], ...] = ()

    @property
    def commit(self) -> bool:
        """For Prepare*/Complete*: whether the transaction commits."""
        return self.state in (TxnState.PREPARE_COMMIT, TxnState.COMPLETE_COMMIT)

    def pending_offsets(self) -> dict[str, dict[TopicPartition, OffsetAndMetadata]]:
        """The transaction's offsets by group, the last commit of a partition winning."""
        by_group: dict[str, dict[TopicPartition, OffsetAndMetadata]] = {}
        for group, tp, offset in self.offsets:
            by_group.setdefault(group, {})[tp] = offset
        return by_group


@dataclass(slots=True)
class _Txn:
    current: Transit
    pending: bool = False  # a transit is being written (or its markers are)


@dataclass(frozen=True, slots=True)
class InitResult:
    """InitProducerId's answer (`error`, producer id and epoch), or a transit to write first:
    then, when `fence` is set, the transit is the abort of the previous epoch's transaction
    and the client is told CONCURRENT_TRANSACTIONS once it is done (it retries)."""

    error: ErrorCode = ErrorCode.NONE
    transit: Transit | None = None
    fence: bool = False


@dataclass(frozen=True, slots=True)
class TxnCheck:
    """Who a request says it is: the producer id and epoch it holds for `transactional_id`."""

    transactional_id: str
    producer_id: int
    producer_epoch: int


@dataclass(slots=True)
class TransactionCoordinator:
    """Every transactional id this broker knows and its current (last written) metadata."""

    config: TxnConfig = field(default_factory=TxnConfig)
    _txns: dict[str, _Txn] = field(default_factory=dict)
    _by_producer: dict[int, str] = field(default_factory=dict)  # producer id -> transactional id

    # --- loading and state changes --------------------------------------------------------------

    def load(self, transit: Transit) -> None:
        """A transactional id's metadata as the transaction log holds it (at start)."""
        self._set(transit)

    def _set(self, transit: Transit) -> None:
        txn = self._txns.get(transit.transactional_id)
        if txn is not None and self._by_producer.get(txn.current.producer_id) == \
                transit.transactional_id:
            del self._by_producer[txn.current.producer_id]
        if transit.state is TxnState.DEAD:
            self._txns.pop(transit.transactional_id, None)
            return
        if txn is None:
            self._txns[transit.transactional_id] = _Txn(transit)
        else:
            txn.current = transit
        self._by_producer[transit.producer_id] = transit.transactional_id

    def _prepare(self, txn: _Txn, **changes: object) -> Transit:
        """A transit from the current metadata, its state change checked; the id is now pending."""
        transit = replace(txn.current, **changes)  # type: ignore[arg-type]
        if txn.current.state not in transit.state.previous:
            raise IllegalStateTransition(f"transaction {transit.transactional_id!r} cannot go "
                                         f"from {txn.current.state} to {transit.state}")
        txn.pending = True
        return transit

    def complete(self, transit: Transit, *, keep_pending: bool = False) -> None:
        """The transit is in the transaction log: it is the current metadata now.
        `keep_pending`: more work follows before others may change it (markers after
        Prepare*)."""
        self._set(transit)
        txn = self._txns.get(transit.transactional_id)
        if txn is not None:  # None: Dead, forgotten
            txn.pending = keep_pending

    def abandon(self, transactional_id: str) -> None:
        """The transit could not be written (or its markers could not): the metadata stays as
        it was, and the id may be changed again."""
        txn = self._txns.get(transactional_id)
        if txn is not None:
            txn.pending = False

    # --- InitProducerId ---------------------------------------------------------------------------

    def init_producer_id(self, transactional_id: str, timeout_ms: int,
                         expected: tuple[int, int] | None, now_ms: int,
                         allocate: Callable[[], int]) -> InitResult:
        """`expected` is the (producer id, epoch) a KIP-360 client already holds (v3+), if any;
        `allocate` gives a new producer id (and may raise KafkaError)."""
        if not transactional_id:
            return InitResult(ErrorCode.INVALID_REQUEST)
        if not 0 < timeout_ms <= self.config.max_timeout_ms:
            return InitResult(ErrorCode.INVALID_TRANSACTION_TIMEOUT)
        txn = self._txns.get(transactional_id)
        if txn is None:
            txn = _Txn(Transit(transactional_id, allocate(), NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
                               NO_PRODUCER_EPOCH, timeout_ms, TxnState.EMPTY, frozenset(), -1,
                               now_ms))
            self._txns[transactional_id] = txn  # not yet written: its first transit is
        meta = txn.current
        if txn.pending:
            return InitResult(ErrorCode.CONCURRENT_TRANSACTIONS)
        if expected is not None and not (
                meta.producer_epoch == NO_PRODUCER_EPOCH or expected[0] == meta.producer_id
                or (expected[0] == meta.last_producer_id and epoch_exhausted(expected[1]))):
            return InitResult(ErrorCode.PRODUCER_FENCED)
        if meta.state.preparing:
            return InitResult(ErrorCode.CONCURRENT_TRANSACTIONS)
        if meta.state is TxnState.ONGOING:
            return InitResult(transit=self._fence(txn, now_ms), fence=True)
        if not meta.state.complete:
            raise IllegalStateTransition(f"transaction {transactional_id!r} found {meta.state}")
        fresh = dict(state=TxnState.EMPTY, timeout_ms=timeout_ms, partitions=frozenset(),
                     groups=frozenset(), offsets=(), start_ms=-1, update_ms=now_ms)
        if epoch_exhausted(meta.producer_epoch) and (expected is None
                                                     or expected[1] == meta.producer_epoch):
            return InitResult(transit=self._prepare(
                txn, producer_id=allocate(), producer_epoch=0, last_producer_id=meta.producer_id,
                last_producer_epoch=meta.producer_epoch if expected else NO_PRODUCER_EPOCH,
                **fresh))
        if expected is None or expected[1] in (meta.producer_epoch, NO_PRODUCER_EPOCH) \
                or meta.producer_epoch == NO_PRODUCER_EPOCH:
            return InitResult(transit=self._prepare(
                txn, producer_epoch=meta.producer_epoch + 1,
                last_producer_epoch=meta.producer_epoch, **fresh))
        if expected[1] == meta.last_producer_epoch:  # a retry of the bump it did not hear of
            return InitResult()
        return InitResult(ErrorCode.PRODUCER_FENCED)

    def _fence(self, txn: _Txn, now_ms: int) -> Transit:
        """Ongoing -> PrepareEpochFence -> PrepareAbort: the epoch is bumped, so the producer
        that ran the transaction is fenced, and the transaction is aborted under the new
        epoch (never returned to a client: it retries InitProducerId and gets the next)."""
        meta = txn.current
        if meta.state is not TxnState.ONGOING:
            raise IllegalStateTransition(f"cannot fence {meta.transactional_id!r} in {meta.state}")
        fenced = replace(meta, state=TxnState.PREPARE_EPOCH_FENCE,
                         producer_epoch=min(meta.producer_epoch + 1, MAX_EPOCH),
                         last_producer_epoch=NO_PRODUCER_EPOCH)
        txn.current, original = fenced, meta
        try:
            return self._prepare(txn, state=TxnState.PREPARE_ABORT, update_ms=now_ms)
        finally:
            txn.current = original

    # --- AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit -------------------------------------

    def _owned(self, check: TxnCheck) -> tuple[_Txn | None, ErrorCode]:
        """The transaction a client request names, if the producer still owns it and no
        transit of it is being written."""
        if not check.transactional_id:
            return None, ErrorCode.INVALID_REQUEST
        txn = self._txns.get(check.transactional_id)
        if txn is None or txn.current.producer_id != check.producer_id:
            return None, ErrorCode.INVALID_PRODUCER_ID_MAPPING
        if txn.current.producer_epoch != check.producer_epoch:
            return None, ErrorCode.PRODUCER_FENCED
        if txn.pending:
            return None, ErrorCode.CONCURRENT_TRANSACTIONS
        return txn, ErrorCode.NONE

    def _check(self, check: TxnCheck) -> tuple[_Txn | None, ErrorCode]:
        """`_owned`, and not being prepared to end."""
        txn, error = self._owned(check)
        if txn is not None and txn.current.state.preparing:
            return None, ErrorCode.CONCURRENT_TRANSACTIONS
        return txn, error

    def _begin(self, txn: _Txn, now_ms: int, **changes: object) -> Transit:
        meta = txn.current
        ongoing = meta.state is TxnState.ONGOING
        return self._prepare(txn, state=TxnState.ONGOING, update_ms=now_ms,
                             start_ms=meta.start_ms if ongoing else now_ms,
                             partitions=meta.partitions if ongoing else frozenset(),
                             groups=meta.groups if ongoing else frozenset(),
                             offsets=meta.offsets if ongoing else (), **changes)

    def add_partitions(self, check: TxnCheck, partitions: Collection[TopicPartition],
                       now_ms: int) -> Transit | ErrorCode:
        txn, error = self._check(check)
        if txn is None:
            return error
        meta = txn.current
        if meta.state is TxnState.ONGOING and meta.partitions.issuperset(partitions):
            return ErrorCode.NONE
        transit = self._begin(txn, now_ms)
        return replace(transit, partitions=transit.partitions | frozenset(partitions))

    def add_offsets(self, check: TxnCheck, group: str, now_ms: int) -> Transit | ErrorCode:
        txn, error = self._check(check)
        if txn is None:
            return error
        meta = txn.current
        if meta.state is TxnState.ONGOING and group in meta.groups:
            return ErrorCode.NONE
        transit = self._begin(txn, now_ms)
        return replace(transit, groups=transit.groups | {group})

    def commit_offsets(self, check: TxnCheck, group: str,
                       offsets: Iterable[tuple[TopicPartition, OffsetAndMetadata]], now_ms: int
                       ) -> Transit | ErrorCode:
        """TxnOffsetCommit: held in the transaction until it ends. The group must be in the
        transaction (AddOffsetsToTxn first), as Kafka's verification requires."""
        txn, error = self._check(check)
        if txn is None:
            return error
        if txn.current.state is not TxnState.ONGOING or group not in txn.current.groups:
            return ErrorCode.INVALID_TXN_STATE
        added = tuple((group, tp, offset) for tp, offset in offsets)
        return self._prepare(txn, state=TxnState.ONGOING, update_ms=now_ms,
                             offsets=txn.current.offsets + added)

    # --- EndTxn, timeouts, markers ----------------------------------------------------------------

    def end_transaction(self, check: TxnCheck, commit: bool, now_ms: int
                        ) -> Transit | ErrorCode:
        """EndTxn from the client: Prepare* to write (then the markers), or the answer."""
        txn, error = self._owned(check)
        if txn is None:
            return error
        state = txn.current.state
        if state is TxnState.ONGOING:
            return self._prepare(txn, update_ms=now_ms, state=TxnState.PREPARE_COMMIT if commit
                                 else TxnState.PREPARE_ABORT)
        ending = (TxnState.PREPARE_COMMIT, TxnState.COMPLETE_COMMIT) if commit \
            else (TxnState.PREPARE_ABORT, TxnState.COMPLETE_ABORT)
        if state in ending:  # a retry: wait for it, or it is done
            return ErrorCode.CONCURRENT_TRANSACTIONS if state.preparing else ErrorCode.NONE
        return ErrorCode.INVALID_TXN_STATE

    def prepare_complete(self, transactional_id: str, now_ms: int) -> Transit:
        """After every marker of a Prepare* transaction is written: Complete*, with the
        transaction's partitions and offsets dropped."""
        txn = self._txns[transactional_id]
        meta = txn.current
        if not meta.state.preparing:
            raise IllegalStateTransition(f"{transactional_id!r} is {meta.state}, not Prepare*")
        return self._prepare(txn, update_ms=now_ms, state=TxnState.COMPLETE_COMMIT if meta.commit
                             else TxnState.COMPLETE_ABORT, partitions=frozenset(),
                             groups=frozenset(), offsets=())

    def timed_out(self, now_ms: int) -> list[Transit]:
        """Aborts (with the epoch bumped, fencing the producer) of every ongoing transaction
        older than its timeout, each pending until written."""
        return [self._fence(txn, now_ms) for txn in self._txns.values()
                if txn.current.state is TxnState.ONGOING and not txn.pending
                and txn.current.start_ms + txn.current.timeout_ms <= now_ms]

    def unfinished(self) -> list[Transit]:
        """Prepare* transactions whose markers are not all written (a restart, a full disk),
        now pending until the caller finishes them."""
        found = []
        for txn in self._txns.values():
            if txn.current.state.preparing and not txn.pending:
                txn.pending = True
                found.append(txn.current)
        return found

    def expired(self, now_ms: int) -> list[Transit]:
        """Dead transits of transactional ids unused for transactional.id.expiration.ms."""
        return [self._prepare(txn, state=TxnState.DEAD, update_ms=now_ms)
                for txn in self._txns.values()
                if txn.current.state.complete and not txn.pending
                and txn.current.update_ms + self.config.id_expiration_ms <= now_ms]

    # --- produce verification and reads -----------------------------------------------------------

    def verify_produce(self, producer_id: int, producer_epoch: int, tp: TopicPartition
                       ) -> ErrorCode:
        """Whether a transactional batch may be appended (KIP-890's verification, in process):
        its partition is in the producer's ongoing transaction, with that epoch."""
        transactional_id = self._by_producer.get(producer_id)
        if transactional_id is None:
            return ErrorCode.INVALID_TXN_STATE
        meta = self._txns[transactional_id].current
        if producer_epoch < meta.producer_epoch:
            return ErrorCode.INVALID_PRODUCER_EPOCH
        if (producer_epoch != meta.producer_epoch or meta.state is not TxnState.ONGOING
                or tp not in meta.partitions):
            return ErrorCode.INVALID_TXN_STATE
        return ErrorCode.NONE

    def unstable_offsets(self, group: str) -> set[TopicPartition]:
        """Partitions of `group` with offsets committed in a transaction not yet complete
        (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT for them)."""
        return {tp for txn in self._txns.values() for g, tp, _ in txn.current.offsets
                if g == group}

    def get(self, transactional_id: str) -> Transit | None:
        txn = self._txns.get(transactional_id)
        return None if txn is None or txn.current.producer_epoch == NO_PRODUCER_EPOCH \
            else txn.current

    def transactions(self) -> Iterator[Transit]:
        """Every known transactional id's metadata (ids never initialized left out)."""
        for txn in self._txns.values():
            if txn.current.producer_epoch != NO_PRODUCER_EPOCH:
                yield txn.current

    def list_transactions(self, states: Collection[str] = (),
                          producer_ids: Collection[int] = (), min_duration_ms: int = -1,
                          pattern: str | None = None, now_ms: int = 0) -> list[Transit]:
        """ListTransactions' filters: states, producer ids, running at least `min_duration_ms`
        (v1), transactional ids matching a regular expression (v2)."""
        regex = re.compile(pattern) if pattern else None
        return [t for t in self.transactions()
                if (not states or t.state in states)
                and (not producer_ids or t.producer_id in producer_ids)
                and (min_duration_ms < 0 or (t.start_ms >= 0
                                             and now_ms - t.start_ms >= min_duration_ms))
                and (regex is None or regex.fullmatch(t.transactional_id))]
