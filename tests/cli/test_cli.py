"""`minikafka` commands in embedded mode, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def mk(*args: str, stdin: str = "", data_dir: Path | str | None = None
       ) -> subprocess.CompletedProcess[str]:
    extra = [] if data_dir is None else ["--data-dir", str(data_dir)]
    return subprocess.run([sys.executable, "-m", "minikafka", *args, *extra], input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_topics_create_list_describe_delete(tmp_path: Path) -> None:
    created = mk("topics", "create", "orders", "--partitions", "3", "--config",
                 "retention.ms=60000", data_dir=tmp_path)
    assert created.returncode == 0, created.stderr
    assert mk("topics", "list", data_dir=tmp_path).stdout.split() == ["orders"]
    described = mk("topics", "describe", "orders", data_dir=tmp_path).stdout
    assert "3 partition(s)" in described and "retention.ms=60000" in described
    assert described.count("partition ") == 3
    assert (tmp_path / "orders-2").is_dir()
    assert mk("topics", "delete", "orders", data_dir=tmp_path).returncode == 0
    assert mk("topics", "list", data_dir=tmp_path).stdout == ""


def test_produce_lines_with_keys_then_consume_with_kcat_format(tmp_path: Path) -> None:
    produced = mk("produce", "t", "-K", ":", stdin="k1:v1\nk2:v:2\n", data_dir=tmp_path)
    assert produced.returncode == 0, produced.stderr
    assert "produced 2 record(s)" in produced.stderr
    consumed = mk("consume", "t", "--from-beginning", "--exit-at-end", "-f",
                  "%t/%p/%o %k=%s (%S)\\n", data_dir=tmp_path)
    assert consumed.returncode == 0, consumed.stderr
    assert consumed.stdout.splitlines() == ["t/0/0 k1=v1 (2)", "t/0/1 k2=v:2 (3)"]


def test_consume_max_messages_and_group_resume(tmp_path: Path) -> None:
    mk("produce", "t", stdin="".join(f"m{i}\n" for i in range(10)), data_dir=tmp_path)
    first = mk("consume", "t", "-G", "g", "--from-beginning", "-c", "4", data_dir=tmp_path)
    assert first.stdout.split() == ["m0", "m1", "m2", "m3"]
    rest = mk("consume", "t", "-G", "g", "-e", data_dir=tmp_path)
    assert rest.stdout.split() == [f"m{i}" for i in range(4, 10)]


def test_data_dir_from_environment(tmp_path: Path) -> None:
    env = {**os.environ, "MINIKAFKA_DATA_DIR": str(tmp_path / "env")}
    subprocess.run([sys.executable, "-m", "minikafka", "topics", "create", "x"], env=env,
                   check=True, capture_output=True, timeout=60)
    assert (tmp_path / "env" / "x-0").is_dir()


@pytest.mark.parametrize("args, message", [
    (["consume", "missing", "-e"], "unknown topic 'missing'"),
    (["topics", "describe", "missing"], "unknown topic 'missing'"),
    (["topics", "create", "x", "--partitions", "0"], "--partitions must be at least 1"),
    (["topics", "create", "x", "--partitions", "-3"], "--partitions must be at least 1"),
    (["topics", "create", "bad/name"], "characters outside"),
    (["topics", "create", "x", "--config", "retention.ms=soon"], "invalid value 'soon'"),
    (["topics", "create", "x", "--config", "no.such=1"], "unknown topic config 'no.such'"),
    (["topics", "delete", "missing"], "unknown topic 'missing'"),
])
def test_bad_input_is_one_line_and_nonzero(tmp_path: Path, args: list[str], message: str) -> None:
    result = mk(*args, data_dir=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_topic_that_exists_already(tmp_path: Path) -> None:
    mk("topics", "create", "x", data_dir=tmp_path)
    again = mk("topics", "create", "x", data_dir=tmp_path)
    assert again.returncode == 1 and again.stderr.strip() == \
        "minikafka: error: topic 'x' already exists"


def test_unreadable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = mk("topics", "list", data_dir=blocker)
    assert result.returncode == 1
    assert result.stderr.startswith("minikafka: error: cannot use data directory")
    assert len(result.stderr.strip().splitlines()) == 1


def test_alter_topic_configs_and_partitions(tmp_path: Path) -> None:
    mk("topics", "create", "t", data_dir=tmp_path)
    altered = mk("topics", "alter", "t", "--partitions", "4", "--config", "retention.ms=1000",
                 data_dir=tmp_path)
    assert altered.returncode == 0, altered.stderr
    described = mk("topics", "describe", "t", data_dir=tmp_path).stdout
    assert "4 partition(s); retention.ms=1000" in described
    reset = mk("topics", "alter", "t", "--delete-config", "retention.ms", data_dir=tmp_path)
    assert reset.returncode == 0, reset.stderr
    assert "retention.ms" not in mk("topics", "describe", "t", data_dir=tmp_path).stdout
    shrink = mk("topics", "alter", "t", "--partitions", "2", data_dir=tmp_path)
    assert shrink.returncode == 1 and "must be larger" in shrink.stderr
    nothing = mk("topics", "alter", "t", data_dir=tmp_path)
    assert nothing.returncode == 1 and "needs --partitions" in nothing.stderr


def test_produce_from_file_with_headers_and_consume_json(tmp_path: Path) -> None:
    lines = tmp_path / "in.txt"
    lines.write_text("a|1\nb|2\nc|3\n")
    produced = mk("produce", "-t", "t", "--file", str(lines), "-K", "|", "-H", "src=file",
                  data_dir=tmp_path / "d")
    assert produced.returncode == 0, produced.stderr
    out = mk("consume", "t", "--from-beginning", "-e", "--json", data_dir=tmp_path / "d")
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["offset"], r["key"], r["value"]) for r in records] == [
        (0, "a", "1"), (1, "b", "2"), (2, "c", "3")]
    assert records[0]["headers"] == {"src": "file"} and records[0]["topic"] == "t"


@pytest.mark.parametrize("offset, expected", [("beginning", ["m0", "m1", "m2", "m3", "m4"]),
                                              ("3", ["m3", "m4"]), ("-2", ["m3", "m4"]),
                                              ("end", [])])
def test_consume_from_offset(tmp_path: Path, offset: str, expected: list[str]) -> None:
    mk("produce", "t", stdin="".join(f"m{i}\n" for i in range(5)), data_dir=tmp_path)
    out = mk("consume", "t", "-p", "0", "-o", offset, "-e", data_dir=tmp_path)
    assert out.stdout.split() == expected


def test_consume_from_time(tmp_path: Path) -> None:
    mk("produce", "t", stdin="old\n", data_dir=tmp_path)
    out = mk("consume", "t", "--from-time", "2000-01-01T00:00:00", "-e", data_dir=tmp_path)
    assert out.stdout.split() == ["old"]
    future = mk("consume", "t", "--from-time", "2999-01-01", "-e", data_dir=tmp_path)
    assert future.stdout == ""


def test_cluster_describe_embedded(tmp_path: Path) -> None:
    mk("topics", "create", "t", "--partitions", "2", data_dir=tmp_path)
    out = mk("cluster", "describe", data_dir=tmp_path).stdout
    assert "mode: embedded" in out and "partitions: 2" in out
    versions = mk("cluster", "api-versions", data_dir=tmp_path)
    assert versions.returncode == 1 and "needs a broker" in versions.stderr


@pytest.mark.parametrize("args, message", [
    (["consume", "t", "-o", "soon"], "--offset takes beginning, end, N or -N"),
    (["consume", "t", "--from-time", "yesterday"], "--from-time takes epoch milliseconds"),
    (["consume", "t", "-o", "1", "--from-beginning"], "choose one of"),
    (["consume", "t", "-G", "g", "-o", "1"], "a group starts at its committed offsets"),
    (["consume"], "which topic?"),
    (["produce", "a", "-t", "b"], "two topics given"),
    (["produce", "t", "-H", "novalue"], "-H expects NAME=VALUE"),
])
def test_consume_and_produce_flag_errors(tmp_path: Path, args: list[str], message: str) -> None:
    mk("topics", "create", "t", data_dir=tmp_path)
    result = mk(*args, data_dir=tmp_path)
    assert result.returncode != 0 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_topics_compact_runs_the_cleaner_on_a_data_dir(tmp_path: Path) -> None:
    mk("topics", "create", "t", "--config", "cleanup.policy=compact", "--config",
       "segment.bytes=100", data_dir=tmp_path)
    for round_ in range(3):  # a batch each: a segment each
        mk("produce", "t", "-K", ":", stdin=f"a:{round_}\nb:{round_}\n", data_dir=tmp_path)
    mk("produce", "t", "-K", ":", stdin="c:last\n", data_dir=tmp_path)
    compacted = mk("topics", "compact", "t", data_dir=tmp_path)
    assert compacted.returncode == 0, compacted.stderr
    assert "4 record(s) removed" in compacted.stdout
    consumed = mk("consume", "t", "--from-beginning", "-e", "-f", "%o %k=%s\n",
                  data_dir=tmp_path)
    assert consumed.stdout.splitlines() == ["4 a=2", "5 b=2", "6 c=last"]
    mk("topics", "create", "plain", data_dir=tmp_path)
    refused = mk("topics", "compact", "plain", data_dir=tmp_path)
    assert refused.returncode == 1 and "is not compacted" in refused.stderr
