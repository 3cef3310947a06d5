"""`minikafka serve` runs the registry on its own port: printed at start, off with
--no-schema-registry, and a taken port is a warning (the broker serves on)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

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


def test_a_taken_registry_port_is_a_warning_and_the_broker_serves(tmp_path: Path) -> None:
    """As the console: a port someone else holds is one warning line naming the way out, and
    the broker starts without the registry."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        broker = InProcessBroker(tmp_path / "data", "--no-ui", "--schema-registry-port",
                                 str(port)).start()
        try:
            assert broker.registry_url is None
            warnings = [line for line in broker.log().splitlines()
                        if f"schema registry cannot listen on 127.0.0.1:{port}" in line]
            assert len(warnings) == 1 and "WARNING" in warnings[0], broker.log()
            assert "pick another with --schema-registry-port, 0 for a free one" in warnings[0]
        finally:
            assert broker.stop() == 0


def test_answers_on_a_kept_alive_connection_are_not_delayed(broker: InProcessBroker) -> None:
    """uvicorn writes a response's head and body separately: without TCP_NODELAY the body
    waited for the client's delayed ACK, ~40 ms on every request of a kept-alive connection
    (as Confluent's client keeps them). 40 requests take well under a second."""
    assert broker.registry_url is not None
    with httpx.Client(base_url=broker.registry_url) as client:
        client.get("/schemas/types")
        started = time.monotonic()
        for _ in range(40):
            assert client.get("/schemas/types").status_code == 200
        assert time.monotonic() - started < 1.0
