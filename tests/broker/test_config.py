"""Broker settings: defaults < TOML file < MINIKAFKA_* environment < command-line flags."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from brokerkit import InProcessBroker
from minikafka.broker import BrokerConfig, add_arguments, load_config

from .test_confluent import produce


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_precedence(tmp_path: Path) -> None:
    config_file = tmp_path / "broker.toml"
    config_file.write_text('port = 1111\nflush = "always"\nnum-partitions = 3\n'
                           'auto_create_topics = false\n')
    env = {"MINIKAFKA_PORT": "2222", "MINIKAFKA_NUM_PARTITIONS": "4"}
    config = load_config(parse("--config", str(config_file), "--port", "3333"), env)
    assert config == BrokerConfig(port=3333, flush="always", num_partitions=4,
                                  auto_create_topics=False)


def test_bad_values_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="port must be int"):
        load_config(parse("--port", "abc"), {})
    with pytest.raises(ValueError, match="unknown setting 'colour'"):
        BrokerConfig().with_values({"colour": "red"}, "test")


def test_help_lists_every_setting_with_its_default() -> None:
    out = subprocess.run([sys.executable, "-m", "minikafka", "serve", "--help"],
                         capture_output=True, text=True, timeout=30).stdout
    out = " ".join(out.split())  # argparse wraps lines
    for text in ("--data-dir", "default: data", "--port", "default: 9092", "MINIKAFKA_FLUSH",
                 "--socket-request-max-bytes", "default: 104857600", "--no-auto-create-topics"):
        assert text in out


def test_producer_id_expiration_reaches_the_log(tmp_path: Path) -> None:
    """--producer-id-expiration-ms (Kafka's producer.id.expiration.ms): with 1 ms, the snapshot a
    clean shutdown writes holds no idempotent producer; with the default day it holds it."""
    for flag, kept in ((("--producer-id-expiration-ms", "1"), 0), ((), 1)):
        data = tmp_path / f"data{kept}"
        broker = InProcessBroker(data, "--no-ui", *flag).start()
        assert produce(broker.bootstrap, "t", [b"x"], **{"enable.idempotence": True}) == [0]
        assert broker.stop() == 0
        snapshot = json.loads((data / "t-0" / "producer.snapshot").read_text())
        assert len(snapshot["producers"]) == kept
