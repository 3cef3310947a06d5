"""Fixtures for the storage-engine tests: real directories, real files, real processes."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from logkit import FakeClock

from minikafka.log import LogManager

WORKER = Path(__file__).with_name("worker.py")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def open_log(data_dir: Path) -> Iterator[Callable[..., LogManager]]:
    """Open LogManagers (default: on `data_dir`); the ones still open are closed afterwards."""
    opened: list[LogManager] = []

    def open_(path: Path | None = None, **kwargs: object) -> LogManager:
        manager = LogManager(path or data_dir, **kwargs)
        opened.append(manager)
        return manager

    yield open_
    for manager in opened:
        manager.close()


@pytest.fixture
def log(open_log: Callable[..., LogManager], clock: FakeClock) -> LogManager:
    """A fresh data directory with the fake clock."""
    return open_log(clock=clock)


class Worker:
    """A `worker.py` subprocess whose stdout lines are collected by a thread as they come."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(WORKER), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if not raw.endswith(b"\n"):
                break  # cut by a kill mid-write: never acknowledged
            line = raw.decode().rstrip("\n")
            if line == "ready":
                self.ready.set()
            else:
                self.lines.append(line)
        self.ready.set()

    def wait_ready(self, timeout: float = 10) -> None:
        assert self.ready.wait(timeout), "worker did not start"
        assert self.proc.poll() is None, self.stderr()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.finish()

    def finish(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout)
        self._thread.join(timeout)
        return code

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None \
            else ""


@pytest.fixture
def spawn() -> Iterator[Callable[..., Worker]]:
    """Start worker subprocesses; any still running at the end are killed."""
    workers: list[Worker] = []

    def spawn_(*args: object) -> Worker:
        worker = Worker(*map(str, args))
        workers.append(worker)
        return worker

    yield spawn_
    for worker in workers:
        worker.kill()
        for stream in (worker.proc.stdout, worker.proc.stderr):
            if stream is not None:
                stream.close()
