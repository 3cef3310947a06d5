"""What happens after an append: long-polling fetches are woken, acks=all waits for fsync, and
appends answered within one read are written together (group commit)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol

Watched = dict[str, set[int]]  # topic -> the indexes of its partitions waited on
# A poll reading at most this many partitions of a topic is filed under each of them (an append
# looks at the polls of its partition only); one reading more is filed once under the topic
# (filing a consumer of a thousand partitions is one entry), and looked at on every append there.
FEW: Final = 8


class Holding(Protocol):
    def write_held(self) -> None: ...


class Poll:
    """A long poll filed in the AppendNotifier (Kafka's DelayedFetch): `wake` is called when a
    partition it reads gets an append (a later turn of the event loop), its time runs out
    (`expired`), its client hangs up or the broker stops; it answers or waits on. No task
    waits for it: a poll costs its object and its filing, and the polls that end in one
    millisecond are answered in one pass. Compiled (mypyc): only a compiled class may
    subclass it."""

    __slots__ = ("gone", "tick", "watched", "woken")

    def __init__(self, watched: Watched, gone: asyncio.Future[None] | None) -> None:
        self.watched = watched  # topic -> the indexes of its partitions it reads
        self.gone = gone  # its client's hang-up signal
        self.tick = 0  # the millisecond it is filed under (0: not filed)
        self.woken = False  # a wake by an append is scheduled

    def wake(self, expired: bool) -> bool:
        """Answer now if there is something to answer or the time is up (`expired`, the client
        gone, the broker stopping); True if answered."""
        raise NotImplementedError


class AppendNotifier:
    """Wakes fetches waiting for data on a partition (Kafka's delayed-fetch purgatory), and
    keeps the partitions holding appends while a connection reads.

    A long poll (`Poll`) is filed under each partition it reads, or, where it reads more than
    FEW partitions of a topic, under that topic with the set of them (so that filing a consumer
    of a thousand partitions is one entry, not a thousand); under its client's hang-up signal;
    and under the millisecond its time runs out in: long polls that end in the same
    millisecond share one timer (Kafka's purgatory ticks by the millisecond too), so they are
    answered in one pass and leave a connection in one write. A poll answered early leaves its
    millisecond's set, whose timer is cancelled once that set is empty; one woken by an append
    that finds nothing to answer (not enough bytes, or a record not yet stable) stays filed as
    it was.

    Group commit: the small Produce requests parsed from one read are answered at once, and
    their batches are held (Partition.append's `on_written`) and written by `write_held`, one
    write per partition instead of one per request, before any of their answers leaves. Written
    before acknowledged, in the order sent, as before; only the number of writes changes.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()  # made in the loop it serves (see BrokerContext)
        self._narrow: dict[str, dict[int, dict[Poll, None]]] = {}  # topic -> partition -> polls
        self._wide: dict[str, dict[Poll, set[int]]] = {}  # topic -> polls, partitions
        self._hangups: dict[asyncio.Future[None], set[Poll]] = {}
        self._ticks: dict[int, tuple[asyncio.TimerHandle, set[Poll]]] = {}
        self._due: list[Poll] = []  # woken by appends, to look again
        self._due_soon = False  # a turn of the event loop is to wake them
        self._reading = 0  # connections reading (between begin_read and end_read)
        self._deferred: list[Callable[[], None]] | None = None  # during a pass: run after it
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

    def begin_read(self) -> None:
        """A connection handles what it read: the polls its appends wake look again when it
        is done (end_read)."""
        self._reading += 1

    def end_read(self) -> None:
        """The read is handled: write what its appends held, then wake the polls they woke,
        in this turn of the event loop (as Kafka completes delayed fetches right after the
        append), unless this is within a pass over polls."""
        self._reading -= 1
        self.write_held()
        if self._due and not self._reading:
            if self._deferred is None:
                self._wake_due()
            else:
                self._wake_soon()

    def notify(self, topic: str, index: int) -> None:
        """The partition got an append: its polls look again, in one pass, after the held
        appends are written (at the end of the read, or in the next turn of the event loop)."""
        due = self._due
        narrow = self._narrow.get(topic)
        if narrow is not None:
            for poll in narrow.get(index, ()):
                if not poll.woken:
                    poll.woken = True
                    due.append(poll)
        wide = self._wide.get(topic)
        if wide is not None:
            for poll, indexes in wide.items():
                if not poll.woken and index in indexes:
                    poll.woken = True
                    due.append(poll)
        if due and not self._reading:
            self._wake_soon()

    def _wake_soon(self) -> None:
        if not self._due_soon:
            self._due_soon = True
            self._loop.call_soon(self._wake_due)

    def defer(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the current pass over polls is over (a connection writes the
        answers of that pass in one write), or soon if there is no pass."""
        if self._deferred is None:
            self._loop.call_soon(callback)
        else:
            self._deferred.append(callback)

    def wake_all(self) -> None:
        """On shutdown: answer every long poll now (each is in one millisecond's set, even one
        that reads no partition)."""
        for tick in list(self._ticks):
            self._ticks[tick][0].cancel()
            self._expire(tick)

    def park(self, poll: Poll, deadline: float) -> None:
        """File `poll` until a partition it watches gets an append, the loop's clock passes
        `deadline` (by up to a millisecond), or its client hangs up."""
        for topic, indexes in poll.watched.items():
            if len(indexes) > FEW:
                wide = self._wide.get(topic)
                if wide is None:
                    wide = self._wide[topic] = {}
                wide[poll] = indexes
                continue
            narrow = self._narrow.get(topic)
            if narrow is None:
                narrow = self._narrow[topic] = {}
            for index in indexes:
                polls = narrow.get(index)
                if polls is None:
                    polls = narrow[index] = {}
                polls[poll] = None
        gone = poll.gone
        if gone is not None:
            hung = self._hangups.get(gone)
            if hung is None:  # a connection's signal is watched once, till it fires
                hung = self._hangups[gone] = set()
                gone.add_done_callback(self._hung_up)
            hung.add(poll)
        poll.tick = tick = math.ceil(deadline * 1000)
        timed = self._ticks.get(tick)
        if timed is None:
            timed = self._ticks[tick] = (self._loop.call_at(tick / 1000, self._expire, tick),
                                         set())
        timed[1].add(poll)

    def _forget(self, poll: Poll) -> None:
        for topic, indexes in poll.watched.items():
            if len(indexes) > FEW:
                wide = self._wide.get(topic)
                if wide is not None:
                    wide.pop(poll, None)
                    if not wide:
                        del self._wide[topic]
                continue
            narrow = self._narrow.get(topic)
            if narrow is None:
                continue
            for index in indexes:
                polls = narrow.get(index)
                if polls is not None:
                    polls.pop(poll, None)
                    if not polls:
                        del narrow[index]
            if not narrow:
                del self._narrow[topic]
        gone = poll.gone
        if gone is not None and (hung := self._hangups.get(gone)) is not None:
            hung.discard(poll)
        tick, poll.tick = poll.tick, 0
        timed = self._ticks.get(tick)
        if timed is not None:
            timed[1].discard(poll)
            if not timed[1]:
                timed[0].cancel()
                del self._ticks[tick]

    def _wake_due(self) -> None:
        self._due_soon = False
        due, self._due = self._due, []
        self._pass(due, False)

    def _hung_up(self, gone: asyncio.Future[None]) -> None:
        self._pass(self._hangups.pop(gone, ()), True)

    def _expire(self, tick: int) -> None:
        _timer, polls = self._ticks.pop(tick)
        self._pass(polls, True)

    def _pass(self, polls: Iterable[Poll], expired: bool) -> None:
        """Wake each poll still filed (`expired`: it must answer), then run what they deferred."""
        deferred: list[Callable[[], None]] = []
        self._deferred = deferred
        try:
            for poll in polls:
                poll.woken = False
                if poll.tick and poll.wake(expired):
                    self._forget(poll)
        finally:
            self._deferred = None
            for callback in deferred:
                callback()


class Flushable(Protocol):
    def flush(self) -> None: ...


class GroupCommit:
    """One fdatasync serves every acks=all request waiting on a partition.

    Requests that arrive while a flush runs wait for the next one (their data may have missed
    it), so however many producers wait, a partition has at most one flush running and one
    queued.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()  # as AppendNotifier's
        self._waiting: dict[Flushable, list[asyncio.Future[None]]] = {}
        self._running: dict[Flushable, asyncio.Task[None]] = {}
        self.on_flush: Callable[[float], None] = _ignore  # seconds each flush took (metrics)

    async def sync(self, target: Flushable) -> None:
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiting.setdefault(target, []).append(waiter)
        if target not in self._running:
            self._running[target] = self._loop.create_task(
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
