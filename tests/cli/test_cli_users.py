"""`minikafka users` on a data directory (how the first user is made, before the broker starts)
and its one-line errors; over the wire it is tested against secured listeners in
tests/broker/test_security.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def users(*args: str, stdin: str = "", env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("KAFKA_BOOTSTRAP_SERVERS", "MINIKAFKA_USER_PASSWORD")}
    return subprocess.run([sys.executable, "-m", "minikafka", "users", *args], input=stdin,
                          text=True, capture_output=True, timeout=30, env=clean | (env or {}))


def test_add_list_delete_on_a_data_dir(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    added = users("add", "alice", "--data-dir", data, stdin="from-stdin\n")
    assert added.returncode == 0, added.stderr
    assert added.stdout == "Set SCRAM-SHA-256, SCRAM-SHA-512 credentials of user 'alice'.\n"
    by_env = users("add", "bob", "--mechanism", "SCRAM-SHA-512", "--iterations", "8192",
                   "--data-dir", data, env={"MINIKAFKA_USER_PASSWORD": "from-env"})
    assert by_env.returncode == 0, by_env.stderr
    assert users("list", "--data-dir", data).stdout == (
        "alice: SCRAM-SHA-256 (iterations=4096), SCRAM-SHA-512 (iterations=4096)\n"
        "bob: SCRAM-SHA-512 (iterations=8192)\n")
    assert users("delete", "alice", "--mechanism", "SCRAM-SHA-256", "--data-dir",
                 data).returncode == 0
    assert users("list", "alice", "--data-dir", data).stdout == (
        "alice: SCRAM-SHA-512 (iterations=4096)\n")
    stored = (tmp_path / "data" / "__meta" / "scram-credentials.json").read_text()
    assert "from-stdin" not in stored and "from-env" not in stored


def test_errors_are_one_line(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    for args, stdin, says in (
            (("add", "alice"), "pw\n", "give -b HOST:PORT"),
            (("add", "alice", "--data-dir", data), "\n", "password must not be empty"),
            (("add", "alice", "--iterations", "100", "--data-dir", data), "pw\n",
             "iterations must be 4096 to 16384"),
            (("delete", "nobody", "--data-dir", data), "", "user 'nobody' has no"),
            (("list", "nobody", "--data-dir", data), "", "no such user: nobody")):
        done = users(*args, stdin=stdin)
        assert done.returncode == 1, (args, done.stdout)
        assert done.stderr.count("\n") == 1 and says in done.stderr, (args, done.stderr)
