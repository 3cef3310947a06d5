"""What all connections share so that no client can exhaust the broker: the budget of request
bytes in flight (`queued.max.request.bytes`), the connection counts (`max.connections`,
`max.connections.per.ip`), and the hang-up signal that ends a departed client's long waits.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")

# Done once the client whose request is being handled has hung up (set per connection): its long
# waits (long-polling fetches, JoinGroup and SyncGroup) end at once instead of holding the
# connection, its descriptor and its memory for their full timeout.
hangup: ContextVar[asyncio.Future[None] | None] = ContextVar("hangup", default=None)


def on_hangup(waiter: asyncio.Future[T], answer: T) -> Callable[[], None]:
    """Answer `waiter` with `answer` when the current request's client hangs up (at once if it
    has); returns the function that cancels this."""
    gone = hangup.get()
    if gone is None:
        return _nothing

    def fire(_: object) -> None:
        if not waiter.done():
            waiter.set_result(answer)

    if gone.done():
        fire(gone)
        return _nothing
    gone.add_done_callback(fire)

    def forget() -> None:
        gone.remove_done_callback(fire)

    return forget


def _nothing() -> None:
    """Nothing to cancel."""


class RequestBudget:
    """Kafka's `queued.max.request.bytes`: bytes received and not yet answered, every connection
    together. Connections charge what they read and are refunded when a request is answered;
    while the budget is spent they stop reading, and they resume when a refund brings it back.

    One connection at a time, the lead, may read on while the budget is spent, to finish the
    frame it is in the middle of: otherwise clients each half-way through a large request could
    hold the whole budget with none able to finish. So memory is bounded by the budget plus one
    frame."""

    def __init__(self, limit: int) -> None:
        self.available: float = math.inf if limit < 0 else limit
        self.lead: object | None = None
        self._waiting: dict[object, Callable[[], None]] = {}  # in the order they stopped

    def refund(self, nbytes: int) -> None:
        self.available += nbytes
        if self.available > 0 and self._waiting:
            self._wake()

    def may_read(self, reader: object, mid_frame: bool, resume: Callable[[], None]) -> bool:
        """Whether `reader` may go on reading; if not, `resume` is called when it may try again.
        Only asked while the budget is spent."""
        if self.lead is reader:
            if mid_frame:
                return True
            self.lead = None  # its frame is whole: another may finish theirs
            self._wake()
        elif self.lead is None and mid_frame:
            self.lead = reader
            return True
        self._waiting[reader] = resume
        return False

    def release(self, reader: object, charged: int) -> None:
        """`reader` is gone: refund what it still held; its lead passes on."""
        self._waiting.pop(reader, None)
        if self.lead is reader:
            self.lead = None
            self._wake()
        self.refund(charged)

    def _wake(self) -> None:
        waiting, self._waiting = self._waiting, {}
        for resume in waiting.values():
            resume()


class ConnectionLimits:
    """Kafka's `max.connections` and `max.connections.per.ip`: open client connections."""

    def __init__(self, total: int, per_ip: int) -> None:
        self.max_total, self.max_per_ip = total, per_ip
        self.open = 0
        self._per_ip: Counter[str] = Counter()

    def admit(self, ip: str) -> str | None:
        """Count a new connection from `ip`, or say which limit refuses it."""
        if self.open >= self.max_total:
            return f"max.connections ({self.max_total}) reached"
        if self._per_ip[ip] >= self.max_per_ip:
            return f"max.connections.per.ip ({self.max_per_ip}) reached for {ip}"
        self.open += 1
        self._per_ip[ip] += 1
        return None

    def release(self, ip: str) -> None:
        self.open -= 1
        self._per_ip[ip] -= 1
        if not self._per_ip[ip]:
            del self._per_ip[ip]
