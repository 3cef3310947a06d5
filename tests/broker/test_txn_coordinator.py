"""The transaction coordinator's state machine (txn/coordinator.py), driven with an injected
clock: no broker, no sleeps. Each change is a transit the test "writes" by completing it, as
`ops` does after the transaction log took it. Then the transaction log on real files."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest

from minikafka.errors import ErrorCode
from minikafka.log import OffsetAndMetadata
from minikafka.txn.coordinator import (
    MAX_EPOCH,
    IllegalStateTransition,
    TransactionCoordinator,
    Transit,
    TxnCheck,
    TxnConfig,
    TxnState,
)
from minikafka.txn.log import TransactionLog

TID = "tx-1"
TP = ("orders", 0)


class Driver:
    """A coordinator whose every transit is written at once (the log never refuses)."""

    def __init__(self, **config: int) -> None:
        self.coordinator = TransactionCoordinator(TxnConfig(**config))
        self.ids = itertools.count(1000)
        self.now = 1_000_000

    def write(self, decided: Transit | ErrorCode) -> ErrorCode:
        if isinstance(decided, ErrorCode):
            return decided
        self.coordinator.complete(decided)
        return ErrorCode.NONE

    def init(self, tid: str = TID, timeout: int = 60_000,
             expected: tuple[int, int] | None = None) -> tuple[ErrorCode, int, int]:
        result = self.coordinator.init_producer_id(tid, timeout, expected, self.now,
                                                   lambda: next(self.ids))
        if result.transit is None:
            current = self.coordinator.get(tid)
            if result.error or current is None:
                return result.error, -1, -1
            return ErrorCode.NONE, current.producer_id, current.producer_epoch
        if result.fence:
            self.finish(result.transit)
            return ErrorCode.CONCURRENT_TRANSACTIONS, -1, -1
        self.write(result.transit)
        return ErrorCode.NONE, result.transit.producer_id, result.transit.producer_epoch

    def finish(self, prepared: Transit) -> None:
        """Prepare* written, markers written, Complete* written."""
        self.coordinator.complete(prepared, keep_pending=True)
        self.write(self.coordinator.prepare_complete(prepared.transactional_id, self.now))

    def end(self, check: TxnCheck, commit: bool) -> ErrorCode:
        decided = self.coordinator.end_transaction(check, commit, self.now)
        if isinstance(decided, ErrorCode):
            return decided
        self.finish(decided)
        return ErrorCode.NONE

    def state(self, tid: str = TID) -> TxnState:
        found = self.coordinator.get(tid)
        assert found is not None
        return found.state


@pytest.fixture
def d() -> Driver:
    return Driver()


def test_init_gives_a_producer_id_at_epoch_0_then_bumps_it(d: Driver) -> None:
    error, pid, epoch = d.init()
    assert (error, epoch) == (ErrorCode.NONE, 0)
    assert d.init() == (ErrorCode.NONE, pid, 1)
    assert d.state() is TxnState.EMPTY


def test_commit_goes_through_prepare_and_complete(d: Driver) -> None:
    _, pid, epoch = d.init()
    check = TxnCheck(TID, pid, epoch)
    assert d.write(d.coordinator.add_partitions(check, [TP], d.now)) is ErrorCode.NONE
    assert d.state() is TxnState.ONGOING
    assert d.coordinator.verify_produce(pid, epoch, TP) is ErrorCode.NONE
    prepared = d.coordinator.end_transaction(check, True, d.now)
    assert isinstance(prepared, Transit) and prepared.state is TxnState.PREPARE_COMMIT
    d.coordinator.complete(prepared, keep_pending=True)
    # While the markers are written, the producer's retries wait.
    assert d.coordinator.end_transaction(check, True, d.now) is ErrorCode.CONCURRENT_TRANSACTIONS
    assert d.coordinator.verify_produce(pid, epoch, TP) is ErrorCode.INVALID_TXN_STATE
    d.write(d.coordinator.prepare_complete(TID, d.now))
    assert d.state() is TxnState.COMPLETE_COMMIT
    assert d.coordinator.get(TID).partitions == frozenset()  # type: ignore[union-attr]
    # A retried EndTxn(commit) succeeds; an abort now is the wrong state.
    assert d.coordinator.end_transaction(check, True, d.now) is ErrorCode.NONE
    assert d.coordinator.end_transaction(check, False, d.now) is ErrorCode.INVALID_TXN_STATE


def test_end_without_a_transaction_is_invalid_txn_state(d: Driver) -> None:
    _, pid, epoch = d.init()
    assert d.end(TxnCheck(TID, pid, epoch), True) is ErrorCode.INVALID_TXN_STATE


def test_a_new_epoch_fences_the_old_one_everywhere(d: Driver) -> None:
    _, pid, old = d.init()
    zombie = TxnCheck(TID, pid, old)
    d.write(d.coordinator.add_partitions(zombie, [TP], d.now))
    # The new instance's InitProducerId aborts the open transaction first, then gets epoch+2.
    assert d.init()[0] is ErrorCode.CONCURRENT_TRANSACTIONS
    assert d.state() is TxnState.COMPLETE_ABORT
    error, pid2, new = d.init()
    assert (error, pid2, new) == (ErrorCode.NONE, pid, old + 2)
    assert d.coordinator.add_partitions(zombie, [TP], d.now) is ErrorCode.PRODUCER_FENCED
    assert d.coordinator.end_transaction(zombie, True, d.now) is ErrorCode.PRODUCER_FENCED
    assert d.coordinator.add_offsets(zombie, "g", d.now) is ErrorCode.PRODUCER_FENCED
    assert d.coordinator.verify_produce(pid, old, TP) is ErrorCode.INVALID_PRODUCER_EPOCH
    assert d.coordinator.add_partitions(TxnCheck(TID, pid + 1, new), [TP], d.now) \
        is ErrorCode.INVALID_PRODUCER_ID_MAPPING


def test_timeout_aborts_with_a_bumped_epoch(d: Driver) -> None:
    _, pid, epoch = d.init(timeout=5_000)
    check = TxnCheck(TID, pid, epoch)
    d.write(d.coordinator.add_partitions(check, [TP], d.now))
    d.now += 4_999
    assert d.coordinator.timed_out(d.now) == []
    d.now += 1
    (abort,) = d.coordinator.timed_out(d.now)
    assert (abort.state, abort.producer_epoch) == (TxnState.PREPARE_ABORT, epoch + 1)
    d.finish(abort)
    assert d.state() is TxnState.COMPLETE_ABORT
    assert d.coordinator.end_transaction(check, True, d.now) is ErrorCode.PRODUCER_FENCED
    assert d.coordinator.verify_produce(pid, epoch, TP) is ErrorCode.INVALID_PRODUCER_EPOCH


def test_timeouts_over_the_maximum_are_refused() -> None:
    d = Driver(max_timeout_ms=10_000)
    assert d.init(timeout=10_001)[0] is ErrorCode.INVALID_TRANSACTION_TIMEOUT
    assert d.init(timeout=0)[0] is ErrorCode.INVALID_TRANSACTION_TIMEOUT
    assert d.init(timeout=10_000)[0] is ErrorCode.NONE
    assert d.init("")[0] is ErrorCode.INVALID_REQUEST


def test_epoch_exhaustion_rotates_the_producer_id(d: Driver) -> None:
    _, pid, _ = d.init()
    current = d.coordinator.get(TID)
    assert current is not None
    d.coordinator.load(Transit(**{**{f: getattr(current, f) for f in Transit.__slots__},
                                  "producer_epoch": MAX_EPOCH - 1}))
    error, new_pid, epoch = d.init()
    assert (error, epoch) == (ErrorCode.NONE, 0) and new_pid != pid
    assert d.coordinator.verify_produce(pid, MAX_EPOCH - 1, TP) is ErrorCode.INVALID_TXN_STATE


def test_kip360_bump_with_the_held_epoch_and_fencing_a_stranger(d: Driver) -> None:
    _, pid, epoch = d.init()
    assert d.init(expected=(pid, epoch)) == (ErrorCode.NONE, pid, epoch + 1)
    # A retry of that bump (its answer was lost) gets the same epoch again.
    assert d.init(expected=(pid, epoch)) == (ErrorCode.NONE, pid, epoch + 1)
    assert d.init(expected=(pid + 7, 0))[0] is ErrorCode.PRODUCER_FENCED


def test_offsets_are_pending_until_the_commit(d: Driver) -> None:
    _, pid, epoch = d.init()
    check = TxnCheck(TID, pid, epoch)
    offsets = [(TP, OffsetAndMetadata(42))]
    assert d.coordinator.commit_offsets(check, "g", offsets, d.now) \
        is ErrorCode.INVALID_TXN_STATE  # AddOffsetsToTxn first
    d.write(d.coordinator.add_offsets(check, "g", d.now))
    d.write(d.coordinator.commit_offsets(check, "g", offsets, d.now))
    assert d.coordinator.unstable_offsets("g") == {TP}
    prepared = d.coordinator.end_transaction(check, True, d.now)
    assert isinstance(prepared, Transit)
    assert prepared.pending_offsets() == {"g": {TP: OffsetAndMetadata(42)}}
    d.finish(prepared)
    assert d.coordinator.unstable_offsets("g") == set()


def test_a_pending_write_answers_concurrent_transactions(d: Driver) -> None:
    _, pid, epoch = d.init()
    check = TxnCheck(TID, pid, epoch)
    transit = d.coordinator.add_partitions(check, [TP], d.now)
    assert isinstance(transit, Transit)
    assert d.coordinator.add_partitions(check, [("x", 0)], d.now) \
        is ErrorCode.CONCURRENT_TRANSACTIONS
    assert d.init()[0] is ErrorCode.CONCURRENT_TRANSACTIONS
    d.coordinator.abandon(TID)  # the log refused it: nothing changed
    assert d.state() is TxnState.EMPTY
    assert d.write(d.coordinator.add_partitions(check, [TP], d.now)) is ErrorCode.NONE


def test_unfinished_prepare_is_handed_out_once(d: Driver) -> None:
    _, pid, epoch = d.init()
    check = TxnCheck(TID, pid, epoch)
    d.write(d.coordinator.add_partitions(check, [TP], d.now))
    prepared = d.coordinator.end_transaction(check, False, d.now)
    assert isinstance(prepared, Transit)
    d.coordinator.complete(prepared)  # markers failed: not pending, still PrepareAbort
    assert d.coordinator.unfinished() == [prepared]
    assert d.coordinator.unfinished() == []


def test_idle_ids_expire_but_not_open_transactions() -> None:
    d = Driver(id_expiration_ms=1_000)
    _, pid, epoch = d.init()
    d.init("busy")
    busy = d.coordinator.get("busy")
    assert busy is not None
    d.write(d.coordinator.add_partitions(TxnCheck("busy", busy.producer_id,
                                                  busy.producer_epoch), [TP], d.now))
    d.now += 1_000
    (dead,) = d.coordinator.expired(d.now)
    assert (dead.transactional_id, dead.state) == (TID, TxnState.DEAD)
    d.write(dead)
    assert d.coordinator.get(TID) is None
    assert d.coordinator.verify_produce(pid, epoch, TP) is ErrorCode.INVALID_TXN_STATE


def test_transitions_kafka_never_takes_are_refused(d: Driver) -> None:
    d.init()
    with pytest.raises(IllegalStateTransition):
        d.coordinator.prepare_complete(TID, d.now)  # Empty -> Complete*
    assert TxnState.PREPARE_ABORT.previous == {TxnState.ONGOING, TxnState.PREPARE_EPOCH_FENCE}


def test_list_filters(d: Driver) -> None:
    _, pid, epoch = d.init("a")
    d.init("b")
    d.write(d.coordinator.add_partitions(TxnCheck("a", pid, epoch), [TP], d.now))
    listed = d.coordinator.list_transactions
    assert [t.transactional_id for t in listed(states={"Ongoing"})] == ["a"]
    assert [t.transactional_id for t in listed(producer_ids={pid})] == ["a"]
    assert [t.transactional_id for t in listed(pattern="b.*")] == ["b"]
    assert listed(min_duration_ms=10, now_ms=d.now + 5) == []
    assert len(listed(min_duration_ms=10, now_ms=d.now + 10)) == 1


def test_the_transaction_log_keeps_the_last_state_of_each_id(tmp_path: Path) -> None:
    """Real files: each id's last record is what a reopened log holds, a Dead record forgets
    the id, a torn last record (a killed writer) is cut, and compaction keeps only the live
    state."""
    d = Driver()
    _, pid, epoch = d.init()
    check = TxnCheck(TID, pid, epoch)
    written = TransactionLog(tmp_path / "transactions.log", compact_min_entries=10)
    added = d.coordinator.add_offsets(check, "g", d.now)
    assert isinstance(added, Transit)
    d.write(added)
    offsets = d.coordinator.commit_offsets(check, "g", [(TP, OffsetAndMetadata(7, 3, "m", 5))],
                                           d.now)
    assert isinstance(offsets, Transit)
    for transit in (added, offsets):
        written.write(transit)
    written.write(replace(added, transactional_id="other", state=TxnState.EMPTY))
    written.write(replace(added, transactional_id="other", state=TxnState.DEAD))
    written.close()
    with open(tmp_path / "transactions.log", "ab") as torn:
        torn.write(b"\x00\x00\x01\x00 torn")
    reopened = TransactionLog(tmp_path / "transactions.log", compact_min_entries=10)
    assert reopened.transactions() == [offsets]
    path = tmp_path / "transactions.log"
    before = path.stat().st_size
    reopened.write(offsets)
    record = path.stat().st_size - before
    for _ in range(15):  # superseded records pile up until compaction rewrites the file
        reopened.write(offsets)
    assert path.stat().st_size < 12 * record  # 20 records without compaction
    reopened.close()
    assert TransactionLog(tmp_path / "transactions.log").transactions() == [offsets]
