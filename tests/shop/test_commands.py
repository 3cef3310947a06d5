"""The commands as a user runs them: the headless demo, the course's Kafka example."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from brokerkit import InProcessBroker

MINIKAFKA = [sys.executable, "-m", "minikafka"]


def _held(port: int) -> socket.socket | None:
    """A listening socket on `port`, or None when someone else holds it already (busy
    either way)."""
    try:
        return socket.create_server(("127.0.0.1", port))
    except OSError:
        return None


def test_headless_demo_reports_invariants_resumes_and_moves_off_busy_ports(
        tmp_path: Path) -> None:
    def demo(orders: int, *ports: str) -> tuple[dict[str, object], str]:
        done = subprocess.run([*MINIKAFKA, "demo", "--data-dir", str(tmp_path), "--orders",
                               str(orders), "--rate", "100", "--no-ui", *ports,
                               "--timeout", "60"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        summary: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
        return summary, done.stderr

    # The default ports (broker 9092, API 8000) are busy: free ones are taken, and said.
    held = [_held(9092), _held(8000)]
    try:
        first, notes = demo(30)
        assert "port 9092 is busy" in notes and "--broker-port" in notes
        assert "port 8000 is busy" in notes and "--api-port" in notes
        # A busy port asked for by flag is one line naming the flag; nothing starts.
        pinned = subprocess.run([*MINIKAFKA, "demo", "--data-dir", str(tmp_path), "--no-ui",
                                 "--orders", "1", "--api-port", "8000"],
                                capture_output=True, text=True, timeout=30)
        assert pinned.returncode == 1 and pinned.stderr.strip() == (
            "minikafka: error: port 8000 is busy: choose another with --api-port "
            "(0 picks a free one)")
    finally:
        for sock in held:
            if sock is not None:
                sock.close()
    assert first["invariants_hold"] and first["all_final"] and first["dead_letters"] == 0
    # The banner says "logs in <data-dir>/shop/logs": the broker's log is there too.
    assert "created topic orders" in (tmp_path / "shop" / "logs" / "broker.log").read_text()
    assert sum(first["by_status"].values()) == 30  # type: ignore[attr-defined]
    second, _ = demo(10, "--api-port", "0", "--broker-port", "0")  # same state: new orders
    assert second["first_order"] == "0031" and second["invariants_hold"]


def test_no_ui_needs_an_order_count() -> None:
    done = subprocess.run([*MINIKAFKA, "demo", "--no-ui"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 1
    assert done.stderr.strip() == ("minikafka: error: --no-ui needs --orders N (it exits once "
                                   "they are all final)")


def test_course_kafka_example(shop_broker: InProcessBroker) -> None:
    wire = ["--bootstrap-server", shop_broker.bootstrap]
    consumer = subprocess.Popen([*MINIKAFKA, "example", "kafka-consumer", *wire, "-c", "3"],
                                stdout=subprocess.PIPE, text=True)
    produced = subprocess.run([*MINIKAFKA, "example", "kafka-producer", *wire],
                              capture_output=True, text=True, timeout=60)
    assert produced.returncode == 0, produced.stderr
    out, _ = consumer.communicate(timeout=60)
    assert out.splitlines() == ["Order123: Order created: #123", "Order123: Order paid: #123",
                                "Order123: Order shipped: #123"]
    described = subprocess.run([*MINIKAFKA, "topics", "describe", "course-orders", *wire],
                               capture_output=True, text=True, timeout=30)
    assert "1 partition(s)" in described.stdout
