"""`minikafka quotas` over the wire, as kafka-configs.sh --entity-type clients."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import InProcessBroker, mk


def test_alter_describe_delete(broker: InProcessBroker) -> None:
    set_ = mk(broker, "quotas", "alter", "--entity-type", "clients", "--entity-name", "cli-app",
              "--add-config", "producer_byte_rate=1024,request_percentage=50")
    assert set_.returncode == 0, set_.stderr
    described = mk(broker, "quotas", "describe", "--entity-name", "cli-app")
    assert described.returncode == 0, described.stderr
    assert described.stdout == ("Quota configs for client-id 'cli-app' are "
                                "producer_byte_rate=1024, request_percentage=50\n")

    refused = mk(broker, "quotas", "alter", "--entity-name", "cli-app",
                 "--add-config", "producer_byte_rat=1")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "producer_byte_rat" in refused.stderr

    removed = mk(broker, "quotas", "alter", "--entity-name", "cli-app",
                 "--delete-config", "producer_byte_rate,request_percentage")
    assert removed.returncode == 0, removed.stderr
    assert mk(broker, "quotas", "describe", "--entity-name", "cli-app").stdout == ""


def test_default_entity(broker: InProcessBroker) -> None:
    """A bound no client of the shared broker reaches."""
    set_ = mk(broker, "quotas", "alter", "--entity-default", "--add-config",
              "consumer_byte_rate=1000000000000")
    assert set_.returncode == 0, set_.stderr
    try:
        described = mk(broker, "quotas", "describe", "--entity-default")
        assert described.stdout == ("Quota configs for the default client-id are "
                                    "consumer_byte_rate=1000000000000\n"), described.stderr
    finally:
        removed = mk(broker, "quotas", "alter", "--entity-default",
                     "--delete-config", "consumer_byte_rate")
    assert removed.returncode == 0, removed.stderr
    assert mk(broker, "quotas", "describe").stdout == ""


def test_needs_a_broker(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    done = subprocess.run([sys.executable, "-m", "minikafka", "quotas", "describe",
                           "--data-dir", str(tmp_path)], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "running broker" in done.stderr
