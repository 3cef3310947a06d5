"""`minikafka transactions list|describe`, over the wire and on a stopped broker's data
directory (the transaction log), as kafka-transactions.sh shows them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from broker.test_transactions import open_transaction

from .conftest import InProcessBroker, create_topic, mk
from .test_cli_groups import table


def test_list_and_describe_over_the_wire(broker: InProcessBroker, topic: str) -> None:
    create_topic(broker.bootstrap, topic, 2)
    producer = open_transaction(broker.bootstrap, f"{topic}-tx", topic, partition=1)
    listed = mk(broker, "transactions", "list", "--state", "Ongoing")
    assert listed.returncode == 0, listed.stderr
    rows = {row[0]: row for row in table(listed.stdout, "TRANSACTIONAL")}
    assert rows[f"{topic}-tx"][2] == "Ongoing"
    described = mk(broker, "transactions", "describe", f"{topic}-tx")
    assert described.returncode == 0, described.stderr
    (row,) = table(described.stdout, "TRANSACTIONAL")
    assert row[2:5] == ["0", "Ongoing", "60000"]
    assert table(described.stdout, "TOPIC") == [[topic, "1"]]
    producer.commit_transaction(30)
    missing = mk(broker, "transactions", "describe", "nobody")
    assert missing.returncode == 1
    assert missing.stderr.strip().endswith("'nobody': TRANSACTIONAL_ID_NOT_FOUND")


def test_on_a_data_directory(tmp_path: Path) -> None:
    broker = InProcessBroker(tmp_path / "data", "--no-ui").start()
    try:
        create_topic(broker.bootstrap, "t", 1)
        open_transaction(broker.bootstrap, "offline-tx", "t")  # left open by the stop
    finally:
        broker.stop()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "minikafka", "transactions", *args,
                               "--data-dir", str(tmp_path / "data")],
                              capture_output=True, text=True, timeout=60)

    listed = run("list")
    assert listed.returncode == 0, listed.stderr
    assert [row[0::2] for row in table(listed.stdout, "TRANSACTIONAL")] == [
        ["offline-tx", "Ongoing"]]
    described = run("describe", "offline-tx")
    assert table(described.stdout, "TOPIC") == [["t", "0"]]
    as_json = json.loads(run("describe", "offline-tx", "--json").stdout)
    assert (as_json["state"], as_json["partitions"]) == ("Ongoing", [["t", 0]])
    assert json.loads(run("list", "--json").stdout)[0]["transactional_id"] == "offline-tx"
