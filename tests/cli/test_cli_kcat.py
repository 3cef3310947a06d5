"""kcat's semantics on a data directory: exact -f output, default formats from -K/-D, -Z, input
splitting, SIGPIPE, read-only commands that create nothing, groups, -Q, delete-records, --json,
several topics and regexes. Output is compared as bytes: text mode would turn \\r into \\n."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ENV = {k: v for k, v in os.environ.items()
       if k not in ("KAFKA_BOOTSTRAP_SERVERS", "MINIKAFKA_DATA_DIR")}


def run(*args: str | Path, stdin: bytes = b"", cwd: Path | None = None
        ) -> subprocess.CompletedProcess[bytes]:
    """`minikafka ARGS` with bytes in and out, nothing taken from the environment."""
    return subprocess.run([sys.executable, "-m", "minikafka", *map(str, args)], input=stdin,
                          capture_output=True, timeout=60, env=ENV, cwd=cwd)


def error(result: subprocess.CompletedProcess[bytes]) -> str:
    """The one-line error of a failed command."""
    assert result.returncode == 1, (result.returncode, result.stderr)
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_format_is_exact_and_defaults_follow_k_and_d(tmp_path: Path) -> None:
    d = ("--data-dir", tmp_path)
    assert run("produce", "t", "-K", ":", *d, stdin=b"k1:v1\nv2\n").returncode == 0
    read = ("consume", "t", "-o", "beginning", "-e", "-q", *d)
    assert run(*read, "-f", "%k=%s|").stdout == b"k1=v1|=v2|"  # no newline added
    assert run(*read).stdout == b"v1\nv2\n"
    assert run(*read, "-K", "\\t").stdout == b"k1\tv1\n\tv2\n"
    assert run(*read, "-K", ":", "-D", "\\x2c").stdout == b"k1:v1,:v2,"
    assert run(*read, "-Z", "-K", ":").stdout == b"k1:v1\nNULL:v2\n"
    assert run(*read, "-f", "%K %S %R\\t\\r\\x41\\66%%\\n").stdout == (
        b"2 2 \x00\x00\x00\x02\t\rAB%\n-1 2 \x00\x00\x00\x02\t\rAB%\n")


def test_format_errors_are_kcats(tmp_path: Path) -> None:
    run("topics", "create", "t", "--data-dir", tmp_path)
    read = ("consume", "t", "-e", "--data-dir", tmp_path)
    assert error(run(*read, "-f", "%s %X")) == "minikafka: error: Unsupported formatter: %X"
    assert error(run(*read, "-f", "%s%")) == "minikafka: error: Empty formatter"


def test_produce_splits_on_d_skips_empty_and_keyless_lines_get_a_null_key(tmp_path: Path) -> None:
    d = ("--data-dir", tmp_path)
    assert run("produce", "t", "-D", ";", *d, stdin=b"a;b;;c").returncode == 0
    keyed = run("produce", "t", "-K", ":", *d, stdin=b"k:v\n\nno key here\n:only value\n")
    assert keyed.returncode == 0, keyed.stderr
    null = run("produce", "t", "-K", ":", "-Z", *d, stdin=b":v\nk:\n")
    assert null.returncode == 0, null.stderr
    out = run("consume", "t", "-o", "beginning", "-e", "-f", "%K:%k %S:%s\\n", "-Z", *d).stdout
    assert out.decode().splitlines() == [
        "-1:NULL 1:a", "-1:NULL 1:b", "-1:NULL 1:c", "1:k 1:v", "-1:NULL 11:no key here",
        "0:NULL 10:only value", "-1:NULL 1:v", "1:k -1:NULL"]
    assert "-D must not be empty" in error(run("produce", "t", "-D", "", *d, stdin=b"x"))
    run("topics", "create", "small", "--config", "max.message.bytes=1000", *d)
    refused = error(run("produce", "small", *d, stdin=b"a\n\n" + b"x" * 5000 + b"\nb"))
    assert refused.startswith("minikafka: error: input lines 1-4: record batch of ")


def test_consume_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    """`minikafka consume ... | head -1`: SIGPIPE semantics, exit 0 and nothing on stderr."""
    lines = b"".join(b"%06d %s\n" % (i, b"x" * 100) for i in range(5000))
    assert run("produce", "t", "--data-dir", tmp_path, stdin=lines).returncode == 0
    reader = subprocess.Popen([sys.executable, "-m", "minikafka", "consume", "t", "-o",
                               "beginning", "-e", "--data-dir", str(tmp_path)], env=ENV,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert reader.stdout is not None and reader.stderr is not None
    assert reader.stdout.readline().startswith(b"000000 ")
    reader.stdout.close()
    assert reader.wait(timeout=60) == 0
    assert reader.stderr.read() == b""


def test_read_only_commands_create_no_data_directory(tmp_path: Path) -> None:
    for command in (["topics", "list"], ["topics", "describe"], ["consume", "t", "-e"],
                    ["groups", "list"], ["cluster", "describe"]):
        message = error(run(*command, cwd=tmp_path))
        assert "no data directory" in message and "--data-dir" in message and "-b" in message
        assert not (tmp_path / "data").exists(), command
    assert run("topics", "create", "t", cwd=tmp_path).returncode == 0
    assert (tmp_path / "data" / "t-0").is_dir()
    assert run("topics", "list", cwd=tmp_path).stdout == b"t\n"


def test_groups_on_a_data_directory(tmp_path: Path) -> None:
    d = ("--data-dir", tmp_path)
    run("produce", "t", *d, stdin=b"".join(b"m%d\n" % i for i in range(10)))
    assert run("consume", "t", "-G", "g", "--from-beginning", "-c", "4", *d).returncode == 0
    listed = run("groups", "list", *d)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.decode().split() == ["GROUP", "STATE", "g", "Empty"]
    described = json.loads(run("groups", "describe", "g", "--json", *d).stdout)
    assert described["state"] == "Empty" and described["members"] == []
    assert described["offsets"] == [{"topic": "t", "partition": 0, "current_offset": 4,
                                     "log_end_offset": 10, "lag": 6, "member_id": None}]
    reset = run("groups", "reset-offsets", "g", "--topic", "t", "--to-offset", "7", "--execute",
                *d)
    assert reset.returncode == 0, reset.stderr
    assert run("consume", "t", "-G", "g", "-e", *d).stdout.split() == [b"m7", b"m8", b"m9"]
    assert run("groups", "delete", "g", *d).returncode == 0
    assert "does not exist" in error(run("groups", "describe", "g", *d))
    assert json.loads(run("groups", "list", "--json", *d).stdout) == []


def test_query_offsets_and_delete_records(tmp_path: Path) -> None:
    d = ("--data-dir", tmp_path)
    run("produce", "t", *d, stdin=b"".join(b"m%d\n" % i for i in range(5)))
    queried = run("consume", "-Q", "-t", "t:0:0", "-t", "t:0:-1", "-t", "t:0:99999999999999", *d)
    assert queried.returncode == 0, queried.stderr
    assert queried.stdout == b"t [0] offset 0\nt [0] offset 5\nt [0] offset -1\n"
    assert "topic:partition:timestamp" in error(run("consume", "-Q", "-t", "t:0", *d))

    deleted = run("topics", "delete-records", "t", "-p", "0", "--before", "3", *d)
    assert deleted.returncode == 0, deleted.stderr
    assert run("consume", "t", "-o", "beginning", "-e", *d).stdout == b"m3\nm4\n"
    [info] = json.loads(run("topics", "describe", "t", "--json", *d).stdout)
    assert info["partitions"][0]["start_offset"] == 3
    assert "no partition 4" in error(run("topics", "delete-records", "t", "-p", "4", "--before",
                                         "1", *d))


def test_json_for_list_and_describe(tmp_path: Path) -> None:
    d = ("--data-dir", tmp_path)
    run("topics", "create", "a", "--partitions", "2", "--config", "retention.ms=60000", *d)
    assert json.loads(run("topics", "list", "--json", *d).stdout) == ["a"]
    [info] = json.loads(run("topics", "describe", "--json", *d).stdout)
    assert info["name"] == "a" and info["configs"] == {"retention.ms": "60000"}
    assert [p["partition"] for p in info["partitions"]] == [0, 1]
    cluster = json.loads(run("cluster", "describe", "--json", *d).stdout)
    assert cluster["mode"] == "embedded" and cluster["partitions"] == "2"


def test_several_topics_and_a_regex(tmp_path: Path) -> None:
    d = ("--data-dir", tmp_path)
    for name in ("orders-eu", "orders-us", "payments"):
        run("produce", name, *d, stdin=name.encode() + b"\n")
    read = ("-o", "beginning", "-e", "-f", "%t\\n", *d)
    regex = run("consume", "^orders-.*", *read)
    assert regex.returncode == 0, regex.stderr
    assert sorted(regex.stdout.split()) == [b"orders-eu", b"orders-us"]
    several = run("consume", "orders-us", "payments", *read)
    assert sorted(several.stdout.split()) == [b"orders-us", b"payments"]
    grouped = run("consume", "-G", "g", "^orders", "payments", "--from-beginning", "-e", "-f",
                  "%t\\n", *d)
    assert sorted(grouped.stdout.split()) == [b"orders-eu", b"orders-us", b"payments"]
    assert "no topic matches '^nothing'" in error(run("consume", "^nothing", "-e", *d))


def test_x_needs_a_broker(tmp_path: Path) -> None:
    message = error(run("produce", "t", "-X", "acks=1", "--data-dir", tmp_path, stdin=b"x\n"))
    assert "-X" in message and "-b" in message
    assert not any(tmp_path.iterdir())
