"""The client quota manager on its own, with a clock the test moves (Kafka's Rate and throttle
time: KIP-13, KIP-124)."""

from __future__ import annotations

import asyncio

import pytest

from minikafka.broker.quotas import (
    CONSUMER_BYTE_RATE,
    PRODUCER_BYTE_RATE,
    REQUEST_PERCENTAGE,
    ClientQuotas,
    Timed,
)
from minikafka.errors import ErrorCode, KafkaError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def quotas(clock: Clock, **defaults: float) -> ClientQuotas:
    q = ClientQuotas(clock=clock)
    if defaults:
        q.alter(None, defaults)
    return q


def test_no_quota_no_throttle() -> None:
    q = ClientQuotas(clock=Clock())
    assert not q.active
    assert q.record("anyone", PRODUCER_BYTE_RATE, 10**9) == 0


def test_throttle_time_is_kafkas() -> None:
    """11 windows of 1 s: 11,000 bytes at once are 1,000 B/s over a 10 s minimum span (the
    rate's floor of samples - 1 whole windows); 22,000 are twice the bound: 10 s of throttle."""
    clock = Clock()
    q = quotas(clock)
    q.alter("slow", {PRODUCER_BYTE_RATE: 1000})
    assert q.active
    assert q.record("slow", PRODUCER_BYTE_RATE, 10_000) == 0
    assert q.record("slow", PRODUCER_BYTE_RATE, 10_000) == 10_000  # 2000 B/s: (2-1)/1 * 10 s
    assert q.record("other", PRODUCER_BYTE_RATE, 10**6) == 0  # no quota of its own, no default
    assert q.record("slow", CONSUMER_BYTE_RATE, 10**6) == 0  # another quota key


def test_old_samples_expire() -> None:
    clock = Clock()
    q = quotas(clock)
    q.alter("c", {PRODUCER_BYTE_RATE: 1000})
    assert q.record("c", PRODUCER_BYTE_RATE, 20_000) > 0
    clock.now += 11.5  # the whole window span later, the burst is forgotten
    assert q.record("c", PRODUCER_BYTE_RATE, 1000) == 0


def test_throttle_is_capped_at_the_window_span() -> None:
    clock = Clock()
    q = quotas(clock)
    q.alter("c", {PRODUCER_BYTE_RATE: 1})
    assert q.record("c", PRODUCER_BYTE_RATE, 10**9) == 11_000


def test_default_entity_applies_to_each_client_alone() -> None:
    clock = Clock()
    q = quotas(clock, consumer_byte_rate=1000)
    q.alter("vip", {CONSUMER_BYTE_RATE: 10**9})
    assert q.limit("a", CONSUMER_BYTE_RATE) == 1000
    assert q.limit("vip", CONSUMER_BYTE_RATE) == 10**9
    assert q.record("a", CONSUMER_BYTE_RATE, 10_000) == 0
    assert q.record("b", CONSUMER_BYTE_RATE, 10_000) == 0  # measured apart from "a"
    assert q.record("a", CONSUMER_BYTE_RATE, 10_000) > 0
    assert q.record("vip", CONSUMER_BYTE_RATE, 10**6) == 0


def test_request_percentage_counts_seconds_of_work() -> None:
    """1 s of handler time within 10 s is 10 % of a thread."""
    clock = Clock()
    q = quotas(clock, request_percentage=10)
    assert q.record("c", REQUEST_PERCENTAGE, 1.0) == 0
    assert q.record("c", REQUEST_PERCENTAGE, 1.0) == 10_000


def test_alter_removes_and_refuses_as_kafka() -> None:
    q = ClientQuotas(clock=Clock())
    q.alter("c", {PRODUCER_BYTE_RATE: 1024, REQUEST_PERCENTAGE: 50})
    q.alter("c", {PRODUCER_BYTE_RATE: None})
    assert q.describe() == {"c": {REQUEST_PERCENTAGE: 50}}
    q.alter("c", {REQUEST_PERCENTAGE: None})
    assert q.describe() == {} and not q.active
    for bad in ({"producer_byte_rat": 1.0}, {PRODUCER_BYTE_RATE: 0.0},
                {PRODUCER_BYTE_RATE: 1.5}, {REQUEST_PERCENTAGE: -1.0}):
        with pytest.raises(KafkaError) as refused:
            q.alter("c", bad)
        assert refused.value.code == ErrorCode.INVALID_REQUEST
    assert q.describe() == {}


def test_json_round_trip() -> None:
    q = ClientQuotas(clock=Clock())
    q.alter(None, {CONSUMER_BYTE_RATE: 2048})
    q.alter("c", {PRODUCER_BYTE_RATE: 1024, REQUEST_PERCENTAGE: 12.5})
    again = ClientQuotas()
    again.load_json(q.to_json())
    assert again.describe() == q.describe()
    with pytest.raises(ValueError):
        again.load_json('{"client-id": [{"name": "x", "quotas": {"bogus": 1}}]}')


def test_timed_counts_work_not_waiting() -> None:
    async def handler() -> str:
        await asyncio.sleep(0.2)
        return "answer"

    async def run() -> tuple[str, float]:
        timed = Timed(handler())
        return await timed, timed.seconds

    answer, seconds = asyncio.run(run())
    assert answer == "answer" and seconds < 0.05


def test_windows_must_be_real() -> None:
    with pytest.raises(ValueError):
        ClientQuotas(samples=0)
