"""Incremental fetch sessions (KIP-227), by the rules of Kafka's FetchSession.scala; sans I/O.

A consumer of many partitions sends them all once (a full fetch, epoch 0) and gets a session id;
its later fetches (epoch 1, 2, ...) name only the partitions whose fetch position changed, plus
the partitions to forget, and the answer leaves out every partition with no records, no error
and the same high watermark and log start offset as last time. The broker reads all of the
session's partitions each time, from the positions it keeps.

- Epoch -1 (FINAL_EPOCH): a sessionless full fetch; a session it names is closed.
- Epoch 0 (INITIAL_EPOCH): a full fetch that closes the session it names and opens a new one
  (session id 0 in the answer when the cache has no slot for it).
- Any other epoch: incremental. An unknown session id is FETCH_SESSION_ID_NOT_FOUND, an epoch
  other than the session's next one INVALID_FETCH_SESSION_EPOCH, and a fetch naming topics by id
  (v13 on) in a session opened by name, or the other way round, FETCH_SESSION_TOPIC_ID_ERROR;
  each answers with no partitions.
- Partitions that returned records move to the end of the session's order, so that under
  max_bytes every partition gets its turn.
- The cache holds `max.incremental.fetch.session.cache.slots` sessions. A new session takes the
  slot of the least recently used one if that was idle for more than the eviction time (Kafka's
  120 s); otherwise that of the smallest session that has lived that long, if the new one has
  more partitions.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

from ..errors import ErrorCode
from ..protocol.fetch import FetchPartition as FetchPartition  # sessions are made of them
from ..protocol.fetch import PartitionData, records_length

FINAL_EPOCH = -1
INITIAL_EPOCH = 0
INVALID_SESSION_ID = 0
EVICTION_MS = 120_000  # Kafka's MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS
DEFAULT_SLOTS = 1000  # Kafka's max.incremental.fetch.session.cache.slots

Key = tuple[str | uuid.UUID | None, int]  # (topic id from v13, else its name; partition)


def next_epoch(epoch: int) -> int:
    """Kafka's FetchMetadata.nextEpoch."""
    if epoch < 0:
        return FINAL_EPOCH
    return 1 if epoch == 2**31 - 1 else epoch + 1


def asked(cached: FetchPartition, again: FetchPartition) -> None:
    """An incremental fetch named this partition again: its new position and limits."""
    cached.fetch_offset = again.fetch_offset
    cached.max_bytes = again.max_bytes
    cached.current_leader_epoch = again.current_leader_epoch


def must_answer(wanted: FetchPartition, data: PartitionData) -> bool:
    """Kafka's CachedPartition.maybeUpdateResponseData: records, an error, or news of the high
    watermark or log start offset; what it tells is remembered."""
    changed = data.high_watermark != wanted.high_watermark \
        or data.log_start_offset != wanted.log_start_offset
    wanted.high_watermark, wanted.log_start_offset = data.high_watermark, data.log_start_offset
    return changed or data.error_code != 0 or has_records(data)


def has_records(data: PartitionData) -> bool:
    records = data.records
    if isinstance(records, bytes):  # most answers: b"", nothing new
        return bool(records)
    return records is not None and records_length(records) > 0


@dataclass(slots=True)
class FetchSession:
    id: int
    epoch: int  # the epoch its next fetch must carry
    partitions: dict[Key, FetchPartition]  # in the order they are read
    created_ms: float
    last_used_ms: float
    topic_ids: bool  # opened by a fetch that named its topics by id (v13 on)
    evictable: bool = False  # it has lived past the eviction time (as of its last use)


class FetchContext:
    """One fetch's view of its session: what to read, and then what to answer. A plain class,
    not a dataclass: one is made per fetch, and a compiled dataclass still builds through
    interpreted code."""

    __slots__ = ("_open", "_session", "_touch", "error_code", "partitions", "session_id")

    def __init__(self, partitions: list[FetchPartition], error_code: int = 0, *,
                 _open: Callable[[list[FetchPartition]], int] | None = None,
                 _session: FetchSession | None = None,
                 _touch: Callable[[FetchSession], None] | None = None) -> None:
        self.partitions = partitions  # to read, in answer order
        self.error_code = error_code
        self.session_id = INVALID_SESSION_ID  # for the answer (set when a session is opened)
        self._open = _open  # a full fetch that opens one
        self._session = _session  # an incremental fetch's
        self._touch = _touch  # the cache's, for an incremental fetch

    @property
    def incremental(self) -> bool:
        """An incremental fetch: partitions with nothing to tell may be left out."""
        return self._session is not None

    def answer(self, data: Sequence[PartitionData | None]
               ) -> list[tuple[FetchPartition, PartitionData]]:
        """The partitions to answer with, given what was read for each of `partitions` (None,
        in an incremental fetch: no records, no error, nothing changed); opens the new session
        of a full fetch. Called once, when the fetch is answered."""
        session = self._session
        if session is None:
            pairs = [(wanted, got) for wanted, got in zip(self.partitions, data, strict=True)
                     if got is not None]
            if self._open is not None:
                for wanted, got in pairs:
                    must_answer(wanted, got)  # a new session starts from what it was told
                self.session_id = self._open(self.partitions)
            return pairs
        self.session_id = session.id
        answered = []
        for wanted, read in zip(self.partitions, data, strict=True):
            if read is not None and must_answer(wanted, read):
                answered.append((wanted, read))
                if has_records(read):  # to the back of the queue
                    del session.partitions[wanted.key]
                    session.partitions[wanted.key] = wanted
        if self._touch is not None:
            self._touch(session)
        return answered


def _ms() -> float:
    return time.monotonic() * 1000


class FetchSessionCache:
    """Kafka's FetchSessionCache, without followers (none is privileged)."""

    def __init__(self, slots: int = DEFAULT_SLOTS, eviction_ms: float = EVICTION_MS,
                 clock: Callable[[], float] = _ms, rng: random.Random | None = None) -> None:
        self.slots = slots
        self.eviction_ms = eviction_ms
        self._clock = clock  # milliseconds
        self._rng = rng or random.Random()
        self._sessions: dict[int, FetchSession] = {}  # least recently used first

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: int) -> FetchSession | None:
        return self._sessions.get(session_id)

    def new_context(self, session_id: int, epoch: int, wanted: list[FetchPartition],
                    forgotten: Iterable[Key], *, topic_ids: bool = False) -> FetchContext:
        """Kafka's FetchManager.newContext for a consumer's fetch; `topic_ids`: it names its
        topics by id (v13 on)."""
        if epoch in (INITIAL_EPOCH, FINAL_EPOCH):
            if session_id != INVALID_SESSION_ID:
                self._sessions.pop(session_id, None)
            if epoch == FINAL_EPOCH:
                return FetchContext(wanted)
            # (a partial, not a lambda: compiled, a lambda here made an object per fetch)
            return FetchContext(wanted, _open=partial(self._create, topic_ids=topic_ids))
        session = self._sessions.get(session_id)
        if session is None:
            return FetchContext([], ErrorCode.FETCH_SESSION_ID_NOT_FOUND)
        if session.epoch != epoch:
            return FetchContext([], ErrorCode.INVALID_FETCH_SESSION_EPOCH)
        if session.topic_ids != topic_ids:
            return FetchContext([], ErrorCode.FETCH_SESSION_TOPIC_ID_ERROR)
        for partition in wanted:
            cached = session.partitions.get(partition.key)
            if cached is None:
                session.partitions[partition.key] = partition
            else:
                asked(cached, partition)
        for key in forgotten:
            session.partitions.pop(key, None)
        session.epoch = next_epoch(epoch)
        self._touch(session)
        return FetchContext(list(session.partitions.values()), _session=session,
                            _touch=self._touch)

    def _touch(self, session: FetchSession) -> None:
        now = self._clock()
        session.last_used_ms = now
        session.evictable = now >= session.created_ms + self.eviction_ms
        self._sessions[session.id] = self._sessions.pop(session.id)  # most recently used last

    def _create(self, partitions: list[FetchPartition], topic_ids: bool) -> int:
        """Kafka's maybeCreateSession: the new session's id, or 0 when there is no slot."""
        now = self._clock()
        if len(self._sessions) >= self.slots and not self._evict(len(partitions), now):
            return INVALID_SESSION_ID
        session_id = INVALID_SESSION_ID
        while session_id == INVALID_SESSION_ID or session_id in self._sessions:
            session_id = self._rng.randint(1, 2**31 - 1)
        self._sessions[session_id] = FetchSession(
            session_id, next_epoch(INITIAL_EPOCH), {p.key: p for p in partitions}, now, now,
            topic_ids)
        return session_id

    def _evict(self, size: int, now: float) -> bool:
        """Kafka's tryEvict: the least recently used session if it is stale, else the smallest
        evictable one if the new session (of `size` partitions) is bigger."""
        if not self._sessions:
            return False
        oldest = next(iter(self._sessions.values()))
        if now - oldest.last_used_ms > self.eviction_ms:
            del self._sessions[oldest.id]
            return True
        evictable = [s for s in self._sessions.values() if s.evictable]
        if not evictable:
            return False
        smallest = min(evictable, key=lambda s: (len(s.partitions), s.id))
        if size <= len(smallest.partitions):
            return False
        del self._sessions[smallest.id]
        return True
