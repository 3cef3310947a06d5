"""Broker fixtures shared by the broker tests and the shop tests: a real `minikafka serve`."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from minikafka.shop.processes import BrokerProcess

__all__ = ["BrokerProcess", "broker", "broker_args", "own_broker"]


@pytest.fixture(scope="session")
def broker_args() -> tuple[str, ...]:
    """Extra `serve` flags for `broker` and `own_broker`; a test package's conftest may override
    it (the group tests shorten the rebalance delay and the minimum session timeout)."""
    return ()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory, broker_args: tuple[str, ...]
           ) -> Iterator[BrokerProcess]:
    """One broker shared by the tests that only add topics of their own (unique names)."""
    proc = BrokerProcess(tmp_path_factory.mktemp("shared") / "data", *broker_args).start()
    yield proc
    assert proc.stop() == 0
    print(proc.log())


@pytest.fixture
def own_broker(tmp_path: Path, broker_args: tuple[str, ...]) -> Iterator[BrokerProcess]:
    """A broker for one test (restarts, settings); started by the test with `.start()`."""
    proc = BrokerProcess(tmp_path / "data", *broker_args)
    yield proc
    proc.stop(signal.SIGKILL)
    print(proc.log())  # shown by pytest when the test failed
