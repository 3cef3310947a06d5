"""kcat (librdkafka's CLI): metadata, produce and consume against a real broker."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .conftest import InProcessBroker

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")


def kcat(broker: InProcessBroker, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(["kcat", "-b", broker.bootstrap, *args], input=stdin, text=True,
                            capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_metadata_lists_the_broker_and_topics(broker: InProcessBroker, topic: str) -> None:
    kcat(broker, "-P", "-t", topic, stdin="x\n")
    out = kcat(broker, "-L")
    assert f"broker 1 at 127.0.0.1:{broker.port} (controller)" in out
    assert f'topic "{topic}" with 1 partitions' in out


def test_produce_then_consume_to_the_end(broker: InProcessBroker, topic: str) -> None:
    lines = [f"message {i}" for i in range(100)]
    kcat(broker, "-P", "-t", topic, "-K:", stdin="".join(f"k{i}:{m}\n" for i, m in
                                                        enumerate(lines)))
    out = kcat(broker, "-C", "-t", topic, "-e", "-f", "%o|%k|%s\n")
    assert out.splitlines() == [f"{i}|k{i}|{m}" for i, m in enumerate(lines)]
    tail = kcat(broker, "-C", "-t", topic, "-o", "-2", "-e", "-f", "%o %s\n")
    assert tail.splitlines() == ["98 message 98", "99 message 99"]
