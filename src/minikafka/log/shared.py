"""Embedded mode: one partition appended to and read by several processes at once.

Every change happens under an exclusive `flock` on `partition.lock`, whose first bytes hold the
published state (a `PartitionState` with a CRC). A writer first catches up with what the others
published, then changes the log, then publishes before it unlocks. Readers read only up to the
published size, so they never see a partial batch; a writer that finds bytes past it knows their
author died and validates them.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from .partition import STATE_SIZE, Partition, PartitionState, same_file
from .producer_state import ProducerInfo

LOCK_FILE = "partition.lock"


class SharedPartition(Partition):
    """A `Partition` kept in step with the other processes that share its directory."""

    _lock_fd: int
    _replaces_active_segment = False  # others append to the file they have open
    _published: PartitionState | None = None  # the last state published or adopted here
    _producers_at = 0  # the producer state reflects the log up to this offset

    # --- locking and the published state ------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._mutex:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _writing(self) -> AbstractContextManager[object]:
        """Locked and up to date: only then may this process change the log and publish. (A
        plain method, as the one it overrides: mypyc compiles no decorated override.)"""
        return self._up_to_date()

    @contextmanager
    def _up_to_date(self) -> Iterator[None]:
        with self._locked():
            self._refresh(writer=True)
            try:
                yield
            finally:
                if self._current_state() != self._published:
                    self._publish()
                self._producers_at = self.log_end_offset

    def _read_published(self) -> PartitionState | None:
        for _attempt in range(3):  # a torn read of a concurrent publish fails the CRC: retry
            state = PartitionState.unpack(os.pread(self._lock_fd, STATE_SIZE, 0))
            if state is not None:
                return state
        return None

    def _publish(self) -> None:
        state = self._current_state()
        os.pwrite(self._lock_fd, state.pack(), 0)
        self._published = state

    # --- opening ------------------------------------------------------------------------------

    def _open(self) -> None:
        self._lock_fd = os.open(self.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        with self._locked():
            super()._open()
            self._publish()
            self._producers_at = self.log_end_offset

    def _saved_state(self) -> PartitionState | None:
        """The published state, which is newer than the checkpoint, except that a broker may have
        used the directory since (it does not publish): then its log start offset prevails."""
        published, saved = self._read_published(), super()._saved_state()
        if published is None or saved is None:
            return published or saved
        return published._replace(log_start_offset=max(published.log_start_offset,
                                                       saved.log_start_offset))

    # --- seeing other processes' work ---------------------------------------------------------

    @property
    def high_watermark(self) -> int:
        self._refresh()
        return self.log_end_offset

    @property
    def max_timestamp(self) -> int:
        self._refresh()
        return super().max_timestamp

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        self._refresh()
        return super().offset_for_timestamp(timestamp)

    # --- transactions: markers, ongoing transactions and aborts other processes wrote --------

    @property
    def last_stable_offset(self) -> int:
        self._catch_up_producers()
        return super().last_stable_offset

    def producer_states(self) -> list[ProducerInfo]:
        self._catch_up_producers()
        return super().producer_states()

    def aborted_transactions(self, start: int, upper: int) -> list[tuple[int, int]]:
        self._refresh()
        with self._mutex:  # older segments' indexes were read whole when they were rolled
            self._active.txn_index.refresh(self.log_end_offset)
        return super().aborted_transactions(start, upper)

    def _catch_up_producers(self) -> None:
        """Replay the headers and markers others published since the producer state was last
        brought up to date (their writers wrote the index entries)."""
        self._refresh()
        with self._mutex:
            if self._producers_at < self.log_end_offset:
                self._replay_headers(self._producers_at, writer=False)
                self._producers_at = self.log_end_offset

    def _refresh(self, writer: bool = False) -> None:
        """Bring this process's view up to the published state; a writer also adopts the whole
        batches of a writer that died before publishing them, and brings the producer state up
        to the log end."""
        state = self._read_published()
        if state is None or (state == self._published and not writer):
            return
        with self._mutex:
            if state != self._published:
                if (state.active_base != self._active.base_offset
                        or state.log_start_offset != self.log_start_offset):
                    with self._listing(writer):
                        self._reload_segments(state)
                self._active.refresh(state.active_size, state.log_end_offset)
                self.log_end_offset = state.log_end_offset
                self.log_start_offset = state.log_start_offset
                self._recovery_point = (state.recovery_base, state.recovery_position)
                self._published = state
            if not writer:
                return
            if os.fstat(self._active.fd).st_size > self._active.size:
                active = self._recover(self._active, self._active.size, None)
                self.segments = [*self.segments[:-1], active]
                self.log_end_offset = active.next_offset
                self._publish()
            if self._producers_at < self.log_end_offset:
                # Others' aborts are in the index file: read them before the replay adds any
                # missing (it appends after the entries it knows).
                self._active.txn_index.refresh(self.log_end_offset)
                self._replay_headers(self._producers_at)

    @contextmanager
    def _listing(self, writer: bool) -> Iterator[None]:
        """A reader lists the segment files under a shared lock, so never halfway through a
        cleaner's swap (which holds the exclusive one); a writer holds that already."""
        if writer:
            yield
            return
        fcntl.flock(self._lock_fd, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _reload_segments(self, state: PartitionState) -> None:
        known = {s.base_offset: s for s in self.segments}
        old_active = self._active.base_offset
        segments = []
        for base in self._segment_bases():
            if base > state.active_base:
                continue  # created by a writer that has not published it (yet)
            segment = known.pop(base, None)
            if segment is not None and not same_file(segment):
                segment.close()  # the cleaner swapped a new file in: open that one
                segment = None
            if segment is not None and base == old_active and base != state.active_base:
                segment.load()  # our active segment was filled and rolled by others: all of it
            elif segment is None:
                try:
                    segment = self._new_segment(base)
                except FileNotFoundError:
                    continue  # deleted by retention meanwhile
                segment.load(state.active_size if base == state.active_base else None)
            segments.append(segment)
        next_start = [s for s in segments if s.base_offset <= state.log_start_offset]
        if len(next_start) > 1:
            segments = segments[len(next_start) - 1:]
        for gone in known.values():
            gone.close()
        self.segments = segments

    # --- closing ------------------------------------------------------------------------------

    def close(self, save: bool = True) -> None:
        if not self._closed:
            super().close(save)
            os.close(self._lock_fd)

    def delete(self) -> None:
        os.close(self._lock_fd)
        (self.dir / LOCK_FILE).unlink(missing_ok=True)
        super().delete()
