"""`minikafka schemas` against the registry of a real broker: register, list, get, check, and
the registry's refusals as one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import InProcessBroker

ORDER_V1 = {"type": "record", "name": "Order", "fields": [{"name": "id", "type": "string"}]}
ORDER_V2 = {**ORDER_V1, "fields": [*ORDER_V1["fields"],
                                   {"name": "note", "type": "string", "default": ""}]}
BREAKING = {**ORDER_V1, "fields": [{"name": "id", "type": "int"}]}


def schemas(broker: InProcessBroker, *args: str, registry: str | None = None,
            stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`minikafka schemas ARGS`, the registry given by the environment as a user would."""
    env = {**os.environ, "SCHEMA_REGISTRY_URL": registry or str(broker.registry_url)}
    return subprocess.run([sys.executable, "-m", "minikafka", "schemas", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, env=env)


def test_register_list_get_check(broker: InProcessBroker, tmp_path: Path) -> None:
    subject = "cli-orders-value"
    files = {}
    for name, schema in (("v1", ORDER_V1), ("v2", ORDER_V2), ("bad", BREAKING)):
        files[name] = tmp_path / f"{name}.avsc"
        files[name].write_text(json.dumps(schema))
    done = schemas(broker, "register", subject, str(files["v1"]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"registered under {subject!r}: version 1, id ")

    check = schemas(broker, "check", subject, str(files["v2"]))
    assert (check.returncode, check.stdout) == (0, f"compatible with {subject!r}\n")
    refused = schemas(broker, "check", subject, str(files["bad"]))
    assert refused.returncode == 1 and "incompatible" in refused.stdout
    assert "TYPE_MISMATCH" in refused.stdout  # Avro's own reason, verbose

    second = schemas(broker, "register", subject, "-", stdin=json.dumps(ORDER_V2))
    assert second.returncode == 0 and "version 2" in second.stdout, second.stderr
    conflict = schemas(broker, "register", subject, str(files["bad"]))
    assert conflict.returncode == 1 and len(conflict.stderr.splitlines()) == 1
    assert "incompatible with an earlier schema" in conflict.stderr and "(error 409)" in \
        conflict.stderr

    listed = schemas(broker, "list", "--prefix", "cli-")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["SUBJECT", "VERSIONS", "LATEST", "ID", "TYPE"]
    assert row.split()[:3] == [subject, "2", "2"] and row.split()[4] == "AVRO"

    got = schemas(broker, "get", subject, "--version", "1")
    assert got.returncode == 0 and json.loads(got.stdout) == ORDER_V1
    assert f"subject {subject!r} version 1" in got.stderr
    by_id = schemas(broker, "get", "--id", row.split()[3])
    assert json.loads(by_id.stdout) == ORDER_V2


def test_errors_are_one_line(broker: InProcessBroker, tmp_path: Path) -> None:
    missing = schemas(broker, "get", "cli-nobody-value")
    assert missing.returncode == 1
    assert missing.stderr == ("minikafka: error: Subject 'cli-nobody-value' not found. "
                              "(error 40401)\n")
    proto = tmp_path / "broken.proto"
    proto.write_text("message {")
    invalid = schemas(broker, "register", "cli-broken-value", str(proto))
    assert invalid.returncode == 1 and "(error 42201)" in invalid.stderr
    assert len(invalid.stderr.splitlines()) == 1
    away = schemas(broker, "list", registry="http://127.0.0.1:9")
    assert away.returncode == 1 and "cannot reach the schema registry" in away.stderr
