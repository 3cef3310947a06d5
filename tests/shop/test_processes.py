"""`BrokerProcess` learns the addresses `minikafka serve` prints, and still starts when one of
its apps cannot (the demo, the benchmarks and the tests start brokers through it)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

from minikafka.shop.processes import BrokerProcess


def test_console_and_registry_addresses(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path / "data").start()  # tests/conftest.py: free ports
    try:
        assert broker.console_url is not None and broker.registry_url is not None
        assert httpx.get(f"{broker.registry_url}subjects", timeout=5).json() == []
    finally:
        broker.stop()


def test_a_taken_registry_port_is_no_registry_not_a_hang(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        broker = BrokerProcess(tmp_path / "data", "--schema-registry-port", str(port)).start(
            timeout=5)
        try:
            assert time.monotonic() - started < 10
            assert broker.registry_url is None and broker.console_url is not None
            assert "the broker runs without it" in broker.log()
        finally:
            broker.stop()
