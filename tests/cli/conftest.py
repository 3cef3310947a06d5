"""The CLI against data directories and a real broker (see brokerkit): `mk` runs `minikafka` in a
process of its own, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from broker.conftest import topic
from broker.groups.conftest import end_offsets
from broker.groups.members import create_topic
from brokerkit import InProcessBroker, broker

__all__ = ["InProcessBroker", "broker", "create_topic", "end_offsets", "mk", "topic"]


@pytest.fixture(scope="session")
def broker_args() -> tuple[str, ...]:
    """No console, no initial rebalance delay (each group here has one consumer), and the
    group members' 3 s session timeout allowed."""
    return ("--no-ui", "--group-initial-rebalance-delay-ms", "0",
            "--group-min-session-timeout-ms", "1000")


def mk(broker: InProcessBroker, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`minikafka ARGS -b <broker>`, with no bootstrap server from the environment."""
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    return subprocess.run([sys.executable, "-m", "minikafka", *args, "-b", broker.bootstrap],
                          input=stdin, capture_output=True, text=True, timeout=90, env=env)
