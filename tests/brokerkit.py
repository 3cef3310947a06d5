"""Broker fixtures shared by the broker, group, console and shop tests.

Most tests need a real broker on real sockets, not a separate process: `InProcessBroker` runs
what `minikafka serve` runs (`minikafka.serve.Server`: the broker and its console, configured
from the same flags and environment) in a thread of the test process with its own event loop,
which saves a Python start-up and imports per broker. Tests about the process itself (a signal,
a crash, `serve`'s output) use `broker_process`, a real `minikafka serve` (`BrokerProcess`).
Both expose `.bootstrap`, `.start()`, `.stop()`, `.restart()`, `.log()`, `.console_url`,
`.data_dir` and `.extra`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import logging
import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from minikafka.broker.config import BrokerConfig, add_arguments, load_config
from minikafka.serve import Server
from minikafka.shop.processes import BrokerProcess

__all__ = ["BrokerProcess", "InProcessBroker", "broker", "broker_args", "broker_process",
           "own_broker"]

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # as `minikafka serve` logs
_serving: contextvars.ContextVar[InProcessBroker] = contextvars.ContextVar("serving")


class InProcessBroker:
    """`minikafka serve <extra>` as a thread of this process, on a free port (the first start
    picks it; restarts keep it). Its `minikafka.*` log records go to `log_path`, as a broker
    process's stderr does. `stop()` checks the broker let go of everything it held."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.data_dir = data_dir
        self.extra = extra
        self.port = 0
        self.console_url: str | None = None  # the web console, unless started with --no-ui
        self.server: Server | None = None  # while running: its broker's context for tests
        self.log_path = data_dir.parent / f"{data_dir.name}-broker.log"
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._status = 0  # as `serve`'s exit status: 1 if the broker failed to stop cleanly
        self._handler: logging.Handler | None = None
        self._level = logging.NOTSET  # the `minikafka` logger's level before start()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def config(self) -> BrokerConfig:
        """What `minikafka serve --data-dir D --port P <extra>` would run with."""
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args(["--data-dir", str(self.data_dir), "--port", str(self.port),
                                  *self.extra])
        return load_config(args)

    def start(self, timeout: float = 15.0) -> InProcessBroker:
        assert self._thread is None, "already started"
        config = self.config()
        self._attach_log(config.log_level)
        ready: Future[Server] = Future()
        thread = threading.Thread(target=self._serve, args=(config, ready), daemon=True,
                                  name=f"broker {self.data_dir}")
        thread.start()
        try:
            server = ready.result(timeout)
        except Exception as exc:
            thread.join(timeout)
            self._detach_log()
            raise RuntimeError(f"broker did not start: {exc}\n{self.log()}") from exc
        self._thread, self._status, self.server = thread, 0, server
        self.port = server.broker.config.port
        self.console_url = server.console.url if server.console is not None else None
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """A clean shutdown, as on SIGTERM; 0 when it went well (None if not running). Only a
        broker process can be killed: use `broker_process` for that."""
        if sig not in (signal.SIGTERM, signal.SIGINT):
            raise ValueError(f"an in-process broker cannot take {signal.Signals(sig).name}")
        if self._thread is None:
            return None
        thread, self._thread, self.server = self._thread, None, None
        if thread.is_alive():
            assert self._loop is not None and self._stop is not None
            self._loop.call_soon_threadsafe(self._stop.set)
            thread.join(timeout)
        assert not thread.is_alive(), f"broker did not stop within {timeout} s\n{self.log()}"
        self._detach_log()
        self._assert_released()
        return self._status

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    # --- the broker's thread ----------------------------------------------------------------------

    def _serve(self, config: BrokerConfig, ready: Future[Server]) -> None:
        _serving.set(self)  # tags this broker's log records, in its tasks and worker threads
        asyncio.run(self._main(config, ready))

    async def _main(self, config: BrokerConfig, ready: Future[Server]) -> None:
        server = Server(config)
        try:
            await server.start()
        except BaseException as exc:
            ready.set_exception(exc)
            return
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        ready.set_result(server)
        await self._stop.wait()
        logging.getLogger("minikafka.broker").info("shutting down")
        try:
            await server.stop()
        except Exception:
            logging.getLogger("minikafka.broker").exception("broker failed to stop")
            self._status = 1

    # --- logs and leaks ---------------------------------------------------------------------------

    def _attach_log(self, level: str) -> None:
        """A root handler, as `serve`'s basicConfig, that keeps the records logged in this
        broker's thread and tasks; `minikafka` loggers let `level` through meanwhile."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.log_path)
        handler.setFormatter(logging.Formatter(_LOG_FORMAT))
        handler.setLevel(level.upper())
        handler.addFilter(lambda record: _serving.get(None) is self)
        logger = logging.getLogger("minikafka")
        self._level = logger.level
        if logger.getEffectiveLevel() > handler.level:
            logger.setLevel(handler.level)
        logging.getLogger().addHandler(handler)
        self._handler = handler

    def _detach_log(self) -> None:
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler.close()
            self._handler = None
            logging.getLogger("minikafka").setLevel(self._level)

    def _held_files(self) -> list[str]:
        return [target for target in _open_files() if Path(target).is_relative_to(self.data_dir)]

    def _assert_released(self) -> None:
        """No file of the data directory is open any more, and no socket listens or serves on
        the broker's ports (a leak would show up here rather than as a flaky later test)."""
        held = self._held_files()
        if held:  # garbage in a reference cycle (a cancelled task's frames) is not a leak
            gc.collect()
            held = self._held_files()
        assert not held, f"files left open by the broker: {held}"
        ports = {self.port} | ({int(self.console_url.rsplit(":", 1)[1].rstrip("/"))}
                               if self.console_url else set())
        sockets = _own_socket_ports() & ports
        assert not sockets, f"sockets left open by the broker on ports {sockets}"


def _open_files() -> list[str]:
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # closed meanwhile (the listing's own fd among them)
            continue
    return targets


def _own_socket_ports() -> set[int]:
    """Local ports of the TCP sockets this process holds open."""
    inodes = {target[len("socket:["):-1] for target in _open_files()
              if target.startswith("socket:[")}
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def broker_args() -> tuple[str, ...]:
    """Extra `serve` flags for `broker`, `own_broker` and `broker_process`; a test package's
    conftest may override it (the group tests shorten the rebalance delay and the minimum
    session timeout)."""
    return ()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory, broker_args: tuple[str, ...]
           ) -> Iterator[InProcessBroker]:
    """One broker shared by the tests that only add topics of their own (unique names)."""
    started = InProcessBroker(tmp_path_factory.mktemp("shared") / "data", *broker_args).start()
    yield started
    assert started.stop() == 0
    print(started.log())


@pytest.fixture
def own_broker(tmp_path: Path, broker_args: tuple[str, ...]) -> Iterator[InProcessBroker]:
    """A broker for one test (settings, a clean shutdown); started by the test with `.start()`."""
    owned = InProcessBroker(tmp_path / "data", *broker_args)
    yield owned
    try:
        assert owned.stop() in (0, None)
    finally:
        print(owned.log())  # shown by pytest when the test failed


@pytest.fixture
def broker_process(tmp_path: Path, broker_args: tuple[str, ...]) -> Iterator[BrokerProcess]:
    """A `minikafka serve` process for one test, for what only a process has: being killed
    (SIGKILL, SIGTERM) and restarted. Started by the test with `.start()`."""
    proc = BrokerProcess(tmp_path / "data", *broker_args)
    yield proc
    proc.stop(signal.SIGKILL)
    print(proc.log())
