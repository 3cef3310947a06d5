"""The commands as a user runs them: the headless demo, the course's Kafka example."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from brokerkit import InProcessBroker

MINIKAFKA = [sys.executable, "-m", "minikafka"]


def test_headless_demo_reports_invariants_and_resumes(tmp_path: Path) -> None:
    def demo(orders: int) -> dict[str, object]:
        done = subprocess.run([*MINIKAFKA, "demo", "--data-dir", str(tmp_path), "--orders",
                               str(orders), "--rate", "100", "--no-ui", "--api-port", "0",
                               "--timeout", "60"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        summary: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
        return summary

    first = demo(30)
    assert first["invariants_hold"] and first["all_final"] and first["dead_letters"] == 0
    # The banner says "logs in <data-dir>/shop/logs": the broker's log is there too.
    assert "created topic orders" in (tmp_path / "shop" / "logs" / "broker.log").read_text()
    assert sum(first["by_status"].values()) == 30  # type: ignore[attr-defined]
    second = demo(10)  # continues from the stored state: new orders, same stock
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
