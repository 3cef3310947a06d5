"""FetchSessionCache without a broker: Kafka's FetchSession rules with an injected clock."""

from __future__ import annotations

from minikafka.broker.fetch_sessions import (
    EVICTION_MS,
    FINAL_EPOCH,
    FetchPartition,
    FetchSessionCache,
    next_epoch,
)
from minikafka.errors import ErrorCode
from minikafka.protocol.fetch import PartitionData


class Clock:
    def __init__(self) -> None:
        self.ms = 0.0

    def __call__(self) -> float:
        return self.ms


def parts(*indexes: int, offset: int = 0) -> list[FetchPartition]:
    return [FetchPartition("t", None, i, offset, 1 << 20) for i in indexes]


def quiet(p: FetchPartition, hw: int = 0) -> PartitionData:
    return PartitionData(p.partition, high_watermark=hw, log_start_offset=0, records=b"")


def open_session(cache: FetchSessionCache, *indexes: int) -> int:
    context = cache.new_context(0, 0, parts(*indexes), [])
    context.answer([quiet(p) for p in context.partitions])
    return context.session_id


def test_epochs_follow_kafkas_next_epoch() -> None:
    assert [next_epoch(e) for e in (-1, 0, 1, 2**31 - 1)] == [FINAL_EPOCH, 1, 2, 1]


def test_incremental_fetch_answers_only_what_changed() -> None:
    cache = FetchSessionCache()
    session_id = open_session(cache, 0, 1, 2)
    assert session_id != 0
    context = cache.new_context(session_id, 1, [], [])
    assert [p.partition for p in context.partitions] == [0, 1, 2]  # all are read...
    data = [quiet(context.partitions[0]), quiet(context.partitions[1], hw=5),
            PartitionData(2, ErrorCode.NOT_LEADER_OR_FOLLOWER, 0, log_start_offset=0)]
    answered = context.answer(data)  # ...those with news answered: a new hw, an error
    assert [p.partition for p, _ in answered] == [1, 2]
    assert context.session_id == session_id
    again = cache.new_context(session_id, 2, [], [])
    assert [p.partition for p, _ in again.answer([quiet(p, hw=5 if p.partition == 1 else 0)
                                                   for p in again.partitions])] == []


def test_partitions_with_records_go_to_the_back() -> None:
    cache = FetchSessionCache()
    session_id = open_session(cache, 0, 1, 2)
    context = cache.new_context(session_id, 1, [], [])
    data = [quiet(p) for p in context.partitions]
    data[0].records = b"x" * 10
    assert [p.partition for p, _ in context.answer(data)] == [0]
    assert [p.partition for p in cache.new_context(session_id, 2, [], []).partitions] == [1, 2, 0]


def test_incremental_requests_add_update_and_forget() -> None:
    cache = FetchSessionCache()
    session_id = open_session(cache, 0, 1)
    context = cache.new_context(session_id, 1, parts(1, 2, offset=7), [("t", 0)])
    assert [(p.partition, p.fetch_offset) for p in context.partitions] == [(1, 7), (2, 7)]
    # The new partition is answered the first time, as the client knows nothing of it yet.
    assert [p.partition for p, _ in context.answer([quiet(p) for p in context.partitions])] == [2]


def test_wrong_epoch_unknown_id_and_closing() -> None:
    cache = FetchSessionCache()
    session_id = open_session(cache, 0)
    assert cache.new_context(session_id, 2, [], []).error_code \
        == ErrorCode.INVALID_FETCH_SESSION_EPOCH
    assert cache.new_context(session_id + 1, 1, [], []).error_code \
        == ErrorCode.FETCH_SESSION_ID_NOT_FOUND
    assert cache.new_context(session_id, 1, [], []).error_code == 0  # the failures changed nothing
    sessionless = cache.new_context(session_id, FINAL_EPOCH, parts(0), [])  # closes it
    sessionless.answer([quiet(p) for p in sessionless.partitions])
    assert sessionless.session_id == 0 and len(cache) == 0
    assert cache.new_context(session_id, 2, [], []).error_code \
        == ErrorCode.FETCH_SESSION_ID_NOT_FOUND


def test_a_new_full_fetch_replaces_the_session_it_names() -> None:
    cache = FetchSessionCache()
    first = open_session(cache, 0)
    context = cache.new_context(first, 0, parts(0, 1), [])
    context.answer([quiet(p) for p in context.partitions])
    assert context.session_id not in (0, first) and len(cache) == 1


def test_a_full_cache_evicts_stale_then_smaller_sessions() -> None:
    clock = Clock()
    cache = FetchSessionCache(slots=2, clock=clock)
    small, big = open_session(cache, 0), open_session(cache, 0, 1, 2)
    assert open_session(cache, 0, 1, 2, 3) == 0  # no slot: nothing is stale or old enough
    clock.ms += EVICTION_MS / 2
    cache.new_context(small, 1, [], []).answer([quiet(p) for p in parts(0)])
    clock.ms += EVICTION_MS / 2 + 1  # `big` idle past the eviction time: stale
    third = open_session(cache, 0)
    assert third != 0 and cache.get(big) is None and cache.get(small) is not None
    # Nothing stale now; `small` has lived past the eviction time, so a bigger session may take
    # its place but an equal one may not.
    cache.new_context(small, 2, [], []).answer([quiet(p) for p in parts(0)])
    assert open_session(cache, 5) == 0
    fourth = open_session(cache, 0, 1)
    assert fourth != 0 and cache.get(small) is None and cache.get(third) is not None


def test_no_slots_means_no_sessions() -> None:
    cache = FetchSessionCache(slots=0)
    assert open_session(cache, 0) == 0 and len(cache) == 0
