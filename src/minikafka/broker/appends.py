"""What happens after an append: long-polling fetches are woken, acks=all waits for fsync."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Protocol

from .bounds import hangup


class AppendNotifier:
    """Wakes fetches waiting for data on a partition (Kafka's delayed-fetch purgatory).

    A long poll waits on one future, filed under each partition it reads, under its client's
    hang-up signal, and under the millisecond its time runs out in: long polls that end in the
    same millisecond share one timer (Kafka's purgatory ticks by the millisecond too), so they
    are answered in one turn of the event loop and leave a connection in one write. A poll woken
    early leaves its millisecond's set, whose timer is cancelled once that set is empty.
    """

    def __init__(self) -> None:
        self._waiters: dict[Hashable, set[asyncio.Future[None]]] = {}
        self._ticks: dict[int, tuple[asyncio.TimerHandle, set[asyncio.Future[None]]]] = {}

    def notify(self, key: Hashable) -> None:
        for waiter in self._waiters.pop(key, ()):
            if not waiter.done():
                waiter.set_result(None)

    def wake_all(self) -> None:
        """On shutdown: answer every long poll now."""
        for key in list(self._waiters):
            self.notify(key)

    async def wait(self, keys: Iterable[Hashable], timeout: float) -> None:
        """Return when any of `keys` gets an append, once `timeout` seconds have passed (up to a
        millisecond more), or when the client hangs up."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        keys = list(keys)
        gone = hangup.get()
        if gone is not None:
            if gone not in self._waiters:  # a connection's signal is watched once, till it fires
                gone.add_done_callback(self.notify)
            keys.append(gone)
        waiters = self._waiters
        for key in keys:
            waiting = waiters.get(key)
            if waiting is None:
                waiters[key] = {waiter}
            else:
                waiting.add(waiter)
        tick = math.ceil((loop.time() + timeout) * 1000)
        timed = self._ticks.get(tick)
        if timed is None:
            timed = self._ticks[tick] = (loop.call_at(tick / 1000, self._expire, tick), set())
        timed[1].add(waiter)
        try:
            await waiter
        finally:
            self._forget(waiter, keys, tick, gone)

    def _forget(self, waiter: asyncio.Future[None], keys: list[Hashable], tick: int,
                gone: Hashable) -> None:
        for key in keys:
            waiting = self._waiters.get(key)
            if waiting is not None:
                waiting.discard(waiter)
                if not waiting and key is not gone:  # gone's entry stays while it is watched
                    del self._waiters[key]
        timed = self._ticks.get(tick)
        if timed is not None:
            timed[1].discard(waiter)
            if not timed[1]:
                timed[0].cancel()
                del self._ticks[tick]

    def _expire(self, tick: int) -> None:
        _timer, waiters = self._ticks.pop(tick)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class Flushable(Protocol):
    def flush(self) -> None: ...


class GroupCommit:
    """One fdatasync serves every acks=all request waiting on a partition.

    Requests that arrive while a flush runs wait for the next one (their data may have missed
    it), so however many producers wait, a partition has at most one flush running and one
    queued.
    """

    def __init__(self) -> None:
        self._waiting: dict[Flushable, list[asyncio.Future[None]]] = {}
        self._running: dict[Flushable, asyncio.Task[None]] = {}
        self.on_flush: Callable[[float], None] = _ignore  # seconds each flush took (metrics)

    async def sync(self, target: Flushable) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(target, []).append(waiter)
        if target not in self._running:
            self._running[target] = asyncio.get_running_loop().create_task(
                self._flush_loop(target))
        await waiter

    async def _flush_loop(self, target: Flushable) -> None:
        try:
            while waiters := self._waiting.pop(target, None):
                started = time.perf_counter()
                try:
                    await asyncio.to_thread(target.flush)
                except Exception as exc:  # fsync failed: every waiter must hear it
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(exc)
                    continue
                self.on_flush(time.perf_counter() - started)
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
        finally:
            del self._running[target]


def _ignore(_seconds: float) -> None:
    """No metrics attached (a context built without a broker)."""
