"""A real `minikafka serve` in a subprocess on a free port, and helpers to talk raw protocol."""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

_ADDRESS = re.compile(r"bootstrap servers (\S+):(\d+)")


class BrokerProcess:
    """Starts `minikafka serve` and knows where it listens; restartable."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.data_dir = data_dir
        self.extra = extra
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.log_path = data_dir.parent / f"{data_dir.name}-broker.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> BrokerProcess:
        cmd = [sys.executable, "-m", "minikafka", "serve", "--data-dir", str(self.data_dir),
               "--port", str(self.port), *self.extra]
        log = open(self.log_path, "a")  # noqa: SIM115  (owned by the child)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = _ADDRESS.search(line)
        if not match or time.monotonic() > deadline:
            self.stop(signal.SIGKILL)
            raise RuntimeError(f"broker did not start: {line!r}\n{self.log()}")
        self.port = int(match.group(2))
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        finally:
            if proc.stdout:
                proc.stdout.close()

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stop (SIGTERM or SIGKILL) and start again on the same port and data."""
        self.stop(sig)
        self.start()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker shared by the tests that only add topics of their own (unique names)."""
    proc = BrokerProcess(tmp_path_factory.mktemp("shared") / "data").start()
    yield proc
    assert proc.stop() == 0
    print(proc.log())


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A broker for one test (restarts, settings); started by the test with `.start()`."""
    proc = BrokerProcess(tmp_path / "data")
    yield proc
    proc.stop(signal.SIGKILL)
    print(proc.log())  # shown by pytest when the test failed


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A topic name unique to this test."""
    name = f"{request.node.module.__name__.rsplit('.', 1)[-1]}.{request.node.name}"
    return re.sub(r"[^a-zA-Z0-9._-]", "-", name)[:200]


# --- raw protocol --------------------------------------------------------------------------------


class RawClient:
    """A bare socket speaking frames, for the bad-input tests."""

    def __init__(self, bootstrap: str) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=5)

    def send(self, payload: bytes) -> None:
        self.sock.sendall(payload)

    def send_frame(self, body: bytes) -> None:
        self.send(struct.pack(">i", len(body)) + body)

    def request(self, request: object, correlation_id: int = 1) -> object:
        """Send a kafka-python request object; return the decoded response."""
        request.with_header(correlation_id=correlation_id, client_id="raw")  # type: ignore[attr-defined]
        self.send(request.encode(header=True, framed=True))  # type: ignore[attr-defined]
        frame = self.read_frame()
        assert frame is not None, "connection closed instead of answering"
        cls = request.header.get_response_class()  # type: ignore[attr-defined]
        return cls.decode(frame, header=True)

    def read_frame(self) -> bytes | None:
        head = self._read(4)
        if head is None:
            return None
        body = self._read(struct.unpack(">i", head)[0])
        return body

    def _read(self, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def is_closed(self) -> bool:
        """True once the broker has closed this connection."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()
