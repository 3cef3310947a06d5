"""Child processes the demo (and the tests, and the benchmark) start, stop, kill and restart."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

_ADDRESS = re.compile(r"bootstrap servers (\S+):(\d+)")
_CONSOLE = re.compile(r"console at (\S+)")
_REGISTRY = re.compile(r"schema registry at (\S+)")


class ManagedProcess:
    """One child whose output goes to a log file; restartable with the same command."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.proc: subprocess.Popen[str] | None = None

    def _spawn(self, argv: Sequence[str], stdout: int | None = None) -> subprocess.Popen[str]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "a")  # noqa: SIM115  (owned by the child)
        try:
            return subprocess.Popen(
                argv, stdout=log if stdout is None else stdout, stderr=log, text=True,
                stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,  # Ctrl-C in a terminal reaches only the parent
                preexec_fn=_die_with_parent)
        finally:
            log.close()

    def start(self) -> ManagedProcess:
        self.proc = self._spawn(self.argv)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Signal the child and wait; SIGKILL it if it outlives `timeout`."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
        finally:
            if proc.stdout:
                proc.stdout.close()

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stop (SIGTERM or SIGKILL) and start again with the same command."""
        self.stop(sig)
        self.start()

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, however it dies (even SIGKILL), so a
    killed demo leaves no services behind. Linux's prctl(PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def _lines(stream: IO[str], count: int, timeout: float) -> list[str]:
    """Up to `count` lines of `stream`, those that come within `timeout` seconds."""
    lines: list[str] = []

    def read() -> None:
        for _ in range(count):
            lines.append(stream.readline())

    reader = threading.Thread(target=read, name="broker stdout", daemon=True)
    reader.start()
    reader.join(timeout)
    return list(lines)


class BrokerProcess(ManagedProcess):
    """`minikafka serve` on `port` (0: a free one, picked by the first start; restarts keep
    it), logging to `log_path` (default: next to its data directory)."""

    def __init__(self, data_dir: Path, *extra: str, port: int = 0,
                 log_path: Path | None = None) -> None:
        super().__init__("broker", [],
                         log_path or data_dir.parent / f"{data_dir.name}-broker.log")
        self.data_dir = data_dir
        self.extra = extra
        self.port = port
        self.console_url: str | None = None  # the web console, unless started with --no-ui
        self.registry_url: str | None = None  # unless started with --no-schema-registry

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> BrokerProcess:
        self.argv = [sys.executable, "-m", "minikafka", "serve", "--data-dir", str(self.data_dir),
                     "--port", str(self.port), *self.extra]
        self.proc = self._spawn(self.argv, stdout=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = _ADDRESS.search(line)
        if not match or time.monotonic() > deadline:
            self.stop(signal.SIGKILL)
            raise RuntimeError(f"broker did not start: {line!r}\n{self.log()}")
        self.port = int(match.group(2))
        # The broker prints the console's address next, then the registry's: each unless it
        # is turned off, or could not start (its port taken: a warning, and no line).
        lines = _lines(self.proc.stdout, sum(flag not in self.extra for flag in
                                             ("--no-ui", "--no-schema-registry")),
                       max(1.0, deadline - time.monotonic()))
        self.console_url, self.registry_url = (
            next((m.group(1) for m in map(pattern.search, lines) if m), None)
            for pattern in (_CONSOLE, _REGISTRY))
        return self
