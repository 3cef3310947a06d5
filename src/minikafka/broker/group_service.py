"""The group coordinator's runtime: the I/O around the pure state machine in `groups.py`.

Each call awaits an asyncio future the machine answers when it decides: at once, or (JoinGroup,
SyncGroup) when the rebalance moves on. One loop timer follows the machine's next deadline
(sessions, rebalance and sync timeouts, the initial delay); the machine's clock is the loop's
monotonic clock. Committed offsets live in the log's offsets store, so they survive restarts;
membership does not (clients rejoin). Created in the running loop, by the broker's start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import TypeVar, cast

from ..clock import wall_ms
from ..errors import ErrorCode, KafkaStorageError
from ..log import OffsetStore
from .bounds import on_hangup
from .config import BrokerConfig
from .groups import Completion, GroupConfig, GroupCoordinator, GroupState, Response

log = logging.getLogger("minikafka.broker")

R = TypeVar("R", bound=Response)
Q = TypeVar("Q")


class GroupService:
    """The coordinator's futures for its waiters, its timer, and its groups' offsets' expiry."""

    def __init__(self, config: BrokerConfig, offsets: OffsetStore) -> None:
        self.coordinator = GroupCoordinator(GroupConfig(
            initial_rebalance_delay_ms=config.group_initial_rebalance_delay_ms,
            min_session_timeout_ms=config.group_min_session_timeout_ms,
            max_session_timeout_ms=config.group_max_session_timeout_ms))
        self.offsets = offsets
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: int | None = None
        self._held: dict[asyncio.Future[Response], Response] = {}  # -> answer if we stop
        self._stopping = False
        # Groups known from committed offsets are listed, described and deletable after a
        # restart; their offsets' retention counts from now, as we cannot tell when they last
        # had members.
        started = wall_ms()
        self._active_at: dict[str, int] = {}  # group -> wall time it was last seen with members
        for group in offsets.groups():
            self.coordinator.load_group(group)
            self._active_at[group] = started
        self._expiry = self._loop.create_task(self._expire_periodically(
            config.offsets_retention_minutes * 60_000,
            config.offsets_retention_check_interval_ms / 1000))

    def now_ms(self) -> int:
        return int(self._loop.time() * 1000)

    async def call(self, method: Callable[[Q, object, int], list[Completion]], request: Q,
                   if_stopping: R) -> R:
        """Run one coordinator call and wait for its answer; `if_stopping` answers it instead
        when the broker shuts down or the client hangs up first (JoinGroup and SyncGroup can
        wait a long time)."""
        waiter: asyncio.Future[Response] = self._loop.create_future()
        self._held[waiter] = if_stopping
        forget = on_hangup(waiter, if_stopping)
        try:
            self._deliver(method(request, waiter, self.now_ms()))
            if self._stopping and not waiter.done():
                waiter.set_result(if_stopping)
            return cast(R, await waiter)
        finally:
            forget()
            del self._held[waiter]

    def _deliver(self, completions: Iterable[Completion]) -> None:
        for waiter, response in completions:
            future = cast(asyncio.Future[Response], waiter)
            if not future.done():  # its request's connection may be gone
                future.set_result(response)
        self._schedule()

    def _schedule(self) -> None:
        deadline = self.coordinator.next_deadline()
        if deadline == self._timer_deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_deadline = deadline
        # +1 ms: the loop may wake a little early, and `tick` rounds its clock down.
        self._timer = (None if deadline is None
                       else self._loop.call_at((deadline + 1) / 1000, self._on_timer))

    def _on_timer(self) -> None:
        self._timer = self._timer_deadline = None
        self._deliver(self.coordinator.tick(self.now_ms()))

    # -- groups and their offsets --

    def delete_groups(self, group_ids: Iterable[str]) -> list[tuple[str, ErrorCode]]:
        """DeleteGroups: Empty groups go, and their committed offsets with them."""
        results = self.coordinator.delete_groups(group_ids)
        for group, error in results:
            if error is ErrorCode.NONE:
                self.offsets.delete(group)
                self._active_at.pop(group, None)
        return results

    async def _expire_periodically(self, retention_ms: int, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                self.expire_offsets(wall_ms() - retention_ms)
            except (OSError, KafkaStorageError) as exc:  # a full disk: the next check retries
                log.warning("expiring committed offsets failed, will retry: %s", exc)

    def expire_offsets(self, cutoff_ms: int) -> None:
        """Kafka's rule (KIP-211): a group with members keeps its offsets; once it has none, an
        offset expires when both its commit and the group's last member are older than the
        cutoff. A group left with neither members nor offsets is removed."""
        now = wall_ms()
        states = {group.group_id: group.state for group in self.coordinator.list_groups()}
        for group, state in states.items():
            if state != GroupState.EMPTY:
                self._active_at[group] = now
        empty = [group for group in set(states) | set(self.offsets.groups())
                 if states.get(group, GroupState.EMPTY) == GroupState.EMPTY]
        idle = [group for group in empty if self._active_at.get(group, 0) < cutoff_ms]
        expired = self.offsets.expire(cutoff_ms, idle)
        if expired:
            log.info("%d committed offset(s) expired", expired)
        for group in empty:
            if not self.offsets.fetch(group):
                self.coordinator.delete_groups([group])
                self._active_at.pop(group, None)

    # -- lifecycle --

    def stop_waiting(self) -> None:
        """Shutdown begins: answer every held JoinGroup/SyncGroup (NOT_COORDINATOR), so that
        their clients look for the coordinator again instead of holding the shutdown up."""
        self._stopping = True
        for waiter, answer in self._held.items():
            if not waiter.done():
                waiter.set_result(answer)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._expiry.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._expiry
