"""What happens after an append: long-polling fetches are woken, acks=all waits for fsync, and
appends answered within one read are written together (group commit)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Protocol

from .bounds import on_hangup


class Holding(Protocol):
    def write_held(self) -> None: ...


class AppendNotifier:
    """Wakes fetches waiting for data on a partition (Kafka's delayed-fetch purgatory), and
    keeps the partitions holding appends while a connection reads.

    Group commit: the small Produce requests parsed from one read are answered at once, and
    their batches are held (Partition.append's `on_written`) and written by `write_held`, one
    write per partition instead of one per request, before any of their answers leaves. Written
    before acknowledged, in the order sent, as before; only the number of writes changes."""

    def __init__(self) -> None:
        self._waiters: dict[Hashable, set[asyncio.Future[None]]] = {}
        # Between `hold` and `write_held`: the partitions holding appends, each with what the
        # appends' service layer keeps about them (ops.HeldWrites)
        self.held: dict[Holding, Any] | None = None

    def hold(self) -> None:
        """Appends may be held from now until `write_held`, which must come before their
        answers leave and before this callback of the event loop ends."""
        if self.held is None:
            self.held = {}

    def write_held(self) -> None:
        """Write what every partition held (each tells its appends how that went)."""
        held, self.held = self.held, None
        for partition in held or ():
            partition.write_held()

    def notify(self, key: Hashable) -> None:
        for waiter in self._waiters.pop(key, ()):
            if not waiter.done():
                waiter.set_result(None)

    def wake_all(self) -> None:
        """On shutdown: answer every long poll now."""
        for key in list(self._waiters):
            self.notify(key)

    async def wait(self, keys: Iterable[Hashable], timeout: float) -> None:
        """Return when any of `keys` gets an append, after `timeout` seconds, or when the
        client hangs up. (A timer answers the waiter: asyncio.wait_for would cost a task
        switch and several futures more on every long poll.)"""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        keys = list(keys)
        for key in keys:
            self._waiters.setdefault(key, set()).add(waiter)
        forget = on_hangup(waiter, None)
        timer = loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            forget()
            for key in keys:
                waiting = self._waiters.get(key)
                if waiting is not None:
                    waiting.discard(waiter)
                    if not waiting:
                        del self._waiters[key]


def _wake(waiter: asyncio.Future[None]) -> None:
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
