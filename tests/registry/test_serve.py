"""`minikafka serve` runs the registry on its own port: printed at start, off with
--no-schema-registry, and a taken port stops the start with a clear message."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .conftest import InProcessBroker


def test_serve_prints_the_registry_and_stops_cleanly(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "minikafka", "serve", "--no-ui", "--port", "0",
                             "--schema-registry-port", "0", "--data-dir", str(tmp_path / "d")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert "minikafka broker listening" in proc.stdout.readline()
        line = proc.stdout.readline()
        assert line.startswith("minikafka schema registry at http://127.0.0.1:"), line
        url = line.split(" at ", 1)[1].strip()
        assert httpx.get(url + "subjects", timeout=10).json() == []
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_no_schema_registry(tmp_path: Path) -> None:
    broker = InProcessBroker(tmp_path / "data", "--no-ui", "--no-schema-registry").start()
    try:
        assert broker.registry_url is None
    finally:
        assert broker.stop() == 0


def test_a_taken_registry_port_stops_the_broker_with_a_clear_message(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"schema registry cannot listen on 127.0.0.1:"
                           f"{port}: .* \\(pick another --schema-registry-port, or "
                           "--no-schema-registry\\)"):
            InProcessBroker(tmp_path / "data", "--schema-registry-port", str(port)).start()
