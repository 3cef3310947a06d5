"""Acknowledged records survive a broker restart, clean (SIGTERM) or not (SIGKILL)."""

from __future__ import annotations

import signal

import pytest
from confluent_kafka import Producer

from .conftest import BrokerProcess
from .test_confluent import consume, produce


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_acknowledged_records_survive_restart(broker_process: BrokerProcess, sig: int) -> None:
    broker_process.start()
    first = [b"before %d" % i for i in range(300)]
    assert produce(broker_process.bootstrap, "durable", first, acks="all",
                   **{"enable.idempotence": True}) == list(range(300))

    # A producer keeps sending while the broker goes down and comes back: what it was told
    # is written must be there afterwards, and its retries must not duplicate anything.
    acked: list[bytes] = []
    producer = Producer({"bootstrap.servers": broker_process.bootstrap,
                         "enable.idempotence": True,
                         "linger.ms": 2, "message.timeout.ms": 20000})

    def delivered(err: object, msg: object) -> None:
        if err is None:
            acked.append(msg.value())  # type: ignore[attr-defined]

    for i in range(200):
        producer.produce("durable", b"during %d" % i, on_delivery=delivered)
        if i == 100:
            producer.flush(10)
            assert broker_process.stop(sig) == (0 if sig == signal.SIGTERM else -signal.SIGKILL)
            broker_process.start()
    assert producer.flush(30) == 0
    assert len(acked) == 200

    values = [v for _, v in consume(broker_process.bootstrap, "durable", 500)]
    assert values[:300] == first
    assert sorted(values[300:]) == sorted(acked)
    assert len(set(values)) == 500
