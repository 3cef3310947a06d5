"""Client quotas as Kafka keeps them (KIP-13, KIP-124): byte rates for produce and fetch and a
share of request time, per client id, measured over a sampled window and answered with a
throttle time.

Sans-I/O: the clock is injected and nothing here touches sockets or files; the connection mutes
a throttled client (connection.py), the Produce and Fetch handlers charge bytes, and `ops`
persists the configured quotas (`to_json`/`from_json`).

Entities are Kafka's `client-id` ones: a named client id, or the default (name None) that every
client id without a value of its own gets, each client measured separately. User entities need
authentication, which this broker does not have.

Measuring is Kafka's `Rate` over `quota.window.num` (11) samples of `quota.window.size.seconds`
(1 s): the sum of the live samples divided by the elapsed time, counted as at least
`samples - 1` whole windows. A record that takes the rate over the bound costs
`(rate - bound) / bound * window` of throttle time (QuotaUtils.throttleTime), at most the whole
window span (ClientQuotaManager's maxThrottleTimeMs).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from ..errors import ErrorCode, KafkaError

PRODUCER_BYTE_RATE = "producer_byte_rate"
CONSUMER_BYTE_RATE = "consumer_byte_rate"
REQUEST_PERCENTAGE = "request_percentage"
KEYS = (PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE, REQUEST_PERCENTAGE)
CLIENT_ID = "client-id"  # the one entity type served
KNOWN_ENTITY_TYPES = (CLIENT_ID, "user", "ip")
QUOTA_WINDOW_NUM = 11
QUOTA_WINDOW_SIZE_SECONDS = 1.0
MAX_SENSORS = 10_000  # measured client ids kept; idle ones go first past this

# The first version of each API whose clients back off by throttle_time_ms themselves (KIP-219,
# from the schemas' notes: "on quota violation, brokers send out responses before throttling");
# answers to earlier versions are held for the throttle time, as Kafka holds them. APIs newer
# than KIP-219 are not listed: every version of them backs off.
CLIENT_THROTTLES_FROM = {
    0: 6, 1: 8, 2: 3, 3: 6, 8: 4, 9: 4, 10: 2, 11: 3, 12: 2, 13: 2, 14: 2, 15: 2, 16: 2, 18: 2,
    19: 3, 20: 2, 21: 1, 22: 1, 32: 2, 33: 1, 37: 1, 42: 1,
}
Entity = str | None  # a client id, or None: the default entity
Ops = Mapping[str, float | None]  # quota key -> new value, or None: remove it

# The throttle time a handler charged the request it is answering (Produce, Fetch), read by the
# connection, which mutes the client for it. Each request runs in its own context.
charged_throttle: ContextVar[int] = ContextVar("charged_throttle", default=0)


def invalid(message: str) -> KafkaError:
    return KafkaError(message, ErrorCode.INVALID_REQUEST)


@dataclass(slots=True)
class _Sample:
    start: float
    value: float = 0.0


@dataclass(slots=True)
class _Rate:
    """Kafka's SampledStat + Rate: one value per window, the oldest dropped."""

    samples: list[_Sample] = field(default_factory=list)
    last_used: float = 0.0

    def record(self, value: float, now: float, window: float, count: int) -> None:
        self.last_used = now
        if not self.samples or now - self.samples[-1].start >= window:
            self.samples.append(_Sample(now))
            del self.samples[:-count]
        self.samples[-1].value += value

    def measure(self, now: float, window: float, count: int) -> tuple[float, float]:
        """(rate per second, the elapsed time it was measured over)."""
        live = [s for s in self.samples if now - s.start < window * count]
        self.samples[:] = live or [_Sample(now)]
        elapsed = now - self.samples[0].start
        full = int(elapsed // window)
        if full < count - 1:
            elapsed += (count - 1 - full) * window
        return sum(s.value for s in live) / elapsed, elapsed


class ClientQuotas:
    """The configured quotas and each client's measured rates."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 samples: int = QUOTA_WINDOW_NUM,
                 window_seconds: float = QUOTA_WINDOW_SIZE_SECONDS) -> None:
        if samples < 1 or window_seconds <= 0:
            raise ValueError(f"quota windows need quota.window.num >= 1 and "
                             f"quota.window.size.seconds > 0, got {samples} and {window_seconds}")
        self._clock = clock
        self._samples = samples
        self._window = window_seconds
        self._configured: dict[Entity, dict[str, float]] = {}
        self._sensors: dict[tuple[str, str], _Rate] = {}
        self.active = False  # any quota configured: the one check requests make when none is

    # --- enforcing --------------------------------------------------------------------------------

    def limit(self, client_id: str, key: str) -> float | None:
        """The bound on `client_id`'s `key`: its own value, else the default entity's."""
        own = self._configured.get(client_id)
        if own is not None and key in own:
            return own[key]
        default = self._configured.get(None)
        return None if default is None else default.get(key)

    def record(self, client_id: str, key: str, amount: float) -> int:
        """Charge `amount` (bytes; for request_percentage, seconds of request time) to the
        client; the throttle time in ms it earns (0 within its quota or without one)."""
        bound = self.limit(client_id, key)
        if bound is None:
            return 0
        now = self._clock()
        sensor = self._sensor(client_id, key, now)
        if key == REQUEST_PERCENTAGE:
            amount *= 100  # seconds of work per second, as a percentage of one thread
        sensor.record(amount, now, self._window, self._samples)
        rate, elapsed = sensor.measure(now, self._window, self._samples)
        if rate <= bound:
            return 0
        throttle = (rate - bound) / bound * elapsed
        return round(min(throttle, self._window * self._samples) * 1000)

    def charge(self, client_id: str | None, key: str, amount: float) -> int:
        """`record` for a handler: the throttle time is also noted for the connection."""
        throttle = self.record(client_id or "", key, amount)
        charged_throttle.set(throttle)
        return throttle

    def unrecord(self, client_id: str, key: str, amount: float) -> None:
        """Take back a charge whose answer was not sent (a throttled fetch answers empty)."""
        sensor = self._sensors.get((client_id, key))
        if sensor is not None and sensor.samples:
            sensor.samples[-1].value -= amount

    def _sensor(self, client_id: str, key: str, now: float) -> _Rate:
        sensor = self._sensors.get((client_id, key))
        if sensor is None:
            if len(self._sensors) >= MAX_SENSORS:  # forget clients idle for a whole window span
                span = self._window * self._samples
                self._sensors = {k: s for k, s in self._sensors.items()
                                 if now - s.last_used < span}
            sensor = self._sensors[(client_id, key)] = _Rate()
        return sensor

    # --- managing ---------------------------------------------------------------------------------

    def describe(self, names: Iterable[Entity] | None = None) -> dict[Entity, dict[str, float]]:
        """The configured entities (only `names`, if given) and their values."""
        wanted = None if names is None else set(names)
        return {name: dict(values) for name, values in self._configured.items()
                if wanted is None or name in wanted}

    def check(self, ops: Ops) -> None:
        """Refuse what Kafka refuses: unknown keys, and values no quota can have."""
        for key, value in ops.items():
            if key not in KEYS:
                raise invalid(f"invalid configuration key {key}")
            if value is None:
                continue
            if value <= 0:
                raise invalid(f"{key} must be positive, got {value}")
            if key != REQUEST_PERCENTAGE and value != int(value):
                raise invalid(f"{key} must be a whole number of bytes, got {value}")

    def alter(self, entity: Entity, ops: Ops) -> None:
        """Set values (or remove them: None) for one entity; checked first, all or nothing."""
        self.check(ops)
        values = self._configured.get(entity, {})
        for key, value in ops.items():
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
        if values:
            self._configured[entity] = values
        else:
            self._configured.pop(entity, None)
        self.active = bool(self._configured)

    def to_json(self) -> str:
        return json.dumps({"version": 1, "client-id": [
            {"name": name, "quotas": values} for name, values in self._configured.items()]})

    def load_json(self, text: str) -> None:
        """Replace the configured quotas with those of `to_json`'s text (ValueError if bad)."""
        try:
            data = json.loads(text)
            entries = [(entry["name"], entry["quotas"]) for entry in data["client-id"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a client quotas file: {exc}") from None
        self._configured.clear()
        self.active = False
        for name, values in entries:
            try:
                self.alter(name, {key: float(value) for key, value in values.items()})
            except KafkaError as exc:
                raise ValueError(str(exc)) from None


class Timed:
    """Await a coroutine and add up the time its own steps take, not the time it waits: the
    request time Kafka charges to request_percentage is its handler thread's, not purgatory's."""

    def __init__(self, coro: Any) -> None:
        self.coro = coro
        self.seconds = 0.0

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, send, error = self.coro, None, None
        while True:
            started = time.perf_counter()
            try:
                step = coro.send(send) if error is None else coro.throw(error)
            except StopIteration as stop:
                return stop.value
            finally:
                self.seconds += time.perf_counter() - started
            send, error = None, None
            try:
                send = yield step
            except BaseException as exc:  # passed on into the coroutine
                error = exc
