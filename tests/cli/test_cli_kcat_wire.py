"""kcat's semantics over the wire, checked against kcat itself on the same topics of a real broker
where kcat is installed: -f tokens and escapes, -K/-D/-Z defaults, -Q; then -p past the last
partition, -X, delete-records, --json, several topics and regexes, and the locked data dir."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from brokerkit import own_broker

from .conftest import InProcessBroker, create_topic
from .test_cli_kcat import ENV, error, run

needs_kcat = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
FORMAT = "%t|%p|%o|%k|%K|%s|%S|%R|%T|%h|%%|\\t\\r\\x41\\66\\0101\\0x42\\q\\\\|\\n"


def wire(broker: InProcessBroker, *args: str, stdin: bytes = b""
         ) -> subprocess.CompletedProcess[bytes]:
    return run(*args, "-b", broker.bootstrap, stdin=stdin)


def kcat(broker: InProcessBroker, *args: str) -> bytes:
    done = subprocess.run(["kcat", "-b", broker.bootstrap, "-q", *args], capture_output=True,
                          timeout=60, check=True)
    return done.stdout


__all__ = ["own_broker"]


def fill(broker: InProcessBroker, topic: str) -> None:
    """Records with and without keys, headers, an empty and a null value."""
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(topic, b"v1", b"k1", headers=[("h", b"x"), ("n", None)])
    producer.produce(topic, b"", None)
    producer.produce(topic, None, b"k3")
    producer.produce(topic, b"v4:with,delims")
    assert producer.flush(30) == 0


@needs_kcat
def test_format_matches_kcat(broker: InProcessBroker, topic: str) -> None:
    create_topic(broker.bootstrap, topic, 1)
    fill(broker, topic)
    for flags in (["-f", FORMAT], ["-Z", "-f", FORMAT], [], ["-K", ":"], ["-Z", "-K", "\\t"],
                  ["-D", "\\x2c", "-K", "="]):
        ours = wire(broker, "consume", "-t", topic, "-o", "beginning", "-e", "-q", *flags)
        assert ours.returncode == 0, ours.stderr
        assert ours.stdout == kcat(broker, "-C", "-t", topic, "-o", "beginning", "-e", *flags), \
            flags


@needs_kcat
def test_query_offsets_matches_kcat(broker: InProcessBroker, topic: str) -> None:
    create_topic(broker.bootstrap, topic, 3)
    wire(broker, "produce", topic, "-p", "1", stdin=b"a\nb\nc\n")
    spec = ["-t", f"{topic}:1:0", "-t", f"{topic}:0:-1", "-t", f"{topic}:2:99999999999999"]
    ours = wire(broker, "consume", "-Q", *spec)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == kcat(broker, "-Q", *spec)
    assert ours.stdout == (f"{topic} [0] offset 0\n{topic} [1] offset 0\n"
                           f"{topic} [2] offset -1\n").encode()


@needs_kcat
def test_produce_keys_and_nulls_as_kcat(broker: InProcessBroker, topic: str) -> None:
    """Empty lines skipped, no separator -> null key, -Z empty -> NULL, a \\r stays, the last
    line needs no newline: what kcat -P produces from the same input."""
    lines = b"k:v\r\n\nbare\n:\nk2:\nlast:x"
    for producer, name in (("ours", topic), ("kcat", f"{topic}-kcat")):
        create_topic(broker.bootstrap, name, 1)
        if producer == "ours":
            done = wire(broker, "produce", name, "-K", ":", "-Z", stdin=lines)
            assert done.returncode == 0, done.stderr
        else:
            subprocess.run(["kcat", "-b", broker.bootstrap, "-P", "-t", name, "-K", ":", "-Z"],
                           input=lines, check=True, timeout=60)
        out = wire(broker, "consume", name, "-o", "beginning", "-e", "-f", "%K %S %k|%s\\n")
        assert out.stdout == b"1 2 k|v\r\n-1 4 |bare\n-1 -1 |\n2 -1 k2|\n4 1 last|x\n", producer


def test_partition_past_the_last_is_one_line(broker: InProcessBroker, topic: str) -> None:
    create_topic(broker.bootstrap, topic, 1)
    message = error(wire(broker, "consume", topic, "-p", "99", "-e"))
    assert message == f"minikafka: error: topic {topic!r} has no partition 99 (it has 1)"


def test_x_passes_client_settings(broker: InProcessBroker, topic: str) -> None:
    create_topic(broker.bootstrap, topic, 1)
    big = b"x" * 5000 + b"\n"
    assert wire(broker, "produce", topic, stdin=big).returncode == 0
    too_big = error(wire(broker, "produce", topic, "-X", "message.max.bytes=1000",
                         stdin=b"small\n" + big))
    assert "input line 2 (5000 bytes, 'xxxx" in too_big and "too large" in too_big.lower()
    assert "no.such.setting" in error(wire(broker, "topics", "list", "-X", "no.such.setting=1"))
    assert "NAME=VALUE" in error(wire(broker, "topics", "list", "-X", "novalue"))


def test_delete_records_and_json_over_the_wire(broker: InProcessBroker, topic: str) -> None:
    create_topic(broker.bootstrap, topic, 2)
    wire(broker, "produce", topic, "-p", "0", stdin=b"m0\nm1\nm2\nm3\n")
    deleted = wire(broker, "topics", "delete-records", topic, "-p", "0", "--before", "2")
    assert deleted.returncode == 0, deleted.stderr
    [info] = json.loads(wire(broker, "topics", "describe", topic, "--json").stdout)
    assert [(p["partition"], p["start_offset"], p["end_offset"]) for p in info["partitions"]] \
        == [(0, 2, 4), (1, 0, 0)]
    assert topic in json.loads(wire(broker, "topics", "list", "--json").stdout)
    cluster = json.loads(wire(broker, "cluster", "describe", "--json").stdout)
    assert cluster["mode"] == "broker"
    versions = json.loads(wire(broker, "cluster", "api-versions", "--json").stdout)
    assert versions["Produce"][0] == 0
    group = f"{topic}-g"
    wire(broker, "consume", topic, "-G", group, "--from-beginning", "-c", "1")
    assert {"group": group, "state": "Empty"} in json.loads(
        wire(broker, "groups", "list", "--json").stdout)
    described = json.loads(wire(broker, "groups", "describe", group, "--json").stdout)
    assert described["state"] == "Empty" and {"topic": topic, "partition": 0,
                                              "current_offset": 3, "log_end_offset": 4, "lag": 1,
                                              "member_id": None} in described["offsets"]
    quotas = wire(broker, "quotas", "describe", "--json")
    assert quotas.returncode == 0 and isinstance(json.loads(quotas.stdout), list)


def test_several_topics_and_a_regex_over_the_wire(broker: InProcessBroker, topic: str) -> None:
    names = [f"{topic}-a", f"{topic}-b"]
    for name in names:
        create_topic(broker.bootstrap, name, 1)
        wire(broker, "produce", name, stdin=name.encode() + b"\n")
    pattern = "^" + re.escape(topic) + "-.*"
    read = ("-o", "beginning", "-e", "-f", "%t\\n")
    plain = wire(broker, "consume", pattern, *read)
    assert plain.returncode == 0, plain.stderr
    assert sorted(plain.stdout.decode().split()) == names
    grouped = wire(broker, "consume", "-G", f"{topic}-g", pattern, "--from-beginning", "-e",
                   "-f", "%t\\n")
    assert sorted(grouped.stdout.decode().split()) == names


def test_locked_data_dir_names_what_to_do(own_broker: InProcessBroker) -> None:
    own_broker.start()
    message = error(run("topics", "list", "--data-dir", own_broker.data_dir))
    assert "bootstrap_servers=" not in message
    assert f"-b {own_broker.bootstrap}" in message and "bootstrap.servers" in message


def test_data_dir_is_unaffected_by_wire_commands(tmp_path: Path, broker: InProcessBroker) -> None:
    """-b never touches ./data."""
    result = run("topics", "list", "-b", broker.bootstrap, cwd=tmp_path)
    assert result.returncode == 0 and not (tmp_path / "data").exists()


def test_produce_sends_each_line_as_it_comes(broker: InProcessBroker, topic: str) -> None:
    """A line typed (or piped from `tail -f`) is sent without waiting for more input."""
    create_topic(broker.bootstrap, topic, 1)
    producer = subprocess.Popen([sys.executable, "-m", "minikafka", "produce", topic, "-b",
                                 broker.bootstrap], stdin=subprocess.PIPE, env=ENV)
    assert producer.stdin is not None
    try:
        producer.stdin.write(b"live\n")
        producer.stdin.flush()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            seen = wire(broker, "consume", topic, "-o", "beginning", "-e", "-q").stdout
            if seen:
                break
        assert seen == b"live\n"
    finally:
        producer.stdin.close()
        assert producer.wait(timeout=30) == 0
