"""The compiled modules (setup.py, mypyc) are their source: none is older than it, and a stale
one is found."""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

from minikafka import compiled

ROOT = Path(__file__).parents[1]


def test_no_compiled_module_is_older_than_its_source() -> None:
    """A compiled module shadows its source: an edit not rebuilt would test the old code."""
    assert compiled.stale() == [], \
        "changed since compiled: reinstall (make) or delete the .so files beside them"


def test_every_compiled_module_is_listed_for_setup_py() -> None:
    """A module dropped from the list would keep running its last compiled version."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        listed = {ROOT / p for p in tomllib.load(f)["tool"]["minikafka"]["build"]["mypyc"]}
    assert set(compiled.extension_sources().values()) <= listed


def test_a_source_edited_after_compiling_is_stale(tmp_path: Path) -> None:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    (tmp_path / "sub").mkdir()
    for name in ("sub/fresh", "sub/edited"):
        (tmp_path / f"{name}.py").write_text("x = 1\n")
        (tmp_path / f"{name}{suffix}").write_bytes(b"")
    (tmp_path / "plain.py").write_text("x = 1\n")  # not compiled: never stale
    edited = tmp_path / "sub/edited.py"
    later = edited.stat().st_mtime + 60
    os.utime(edited, (later, later))
    assert compiled.stale(tmp_path) == [edited]


def test_serve_warns_of_a_stale_compiled_module(tmp_path: Path) -> None:
    """The package copied with a compiled module older than its source (an extension module
    that is never imported, so any bytes do): `minikafka serve` names it before starting."""
    shutil.copytree(compiled.PACKAGE, tmp_path / "minikafka")
    source = tmp_path / "minikafka/examples/kafka_course.py"
    extension = source.with_suffix(importlib.machinery.EXTENSION_SUFFIXES[0])
    extension.write_bytes(b"")
    os.utime(extension, (source.stat().st_mtime - 60,) * 2)
    with socket.socket() as taken:  # the broker's port: serve stops right after the check
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        run = subprocess.run(
            [sys.executable, "-m", "minikafka", "serve", "--no-ui", "--no-schema-registry",
             "--port", str(taken.getsockname()[1]), "--data-dir", str(tmp_path / "data")],
            capture_output=True, text=True, timeout=60,
            env={**os.environ,  # the copy first; mypyc's shared library where it was built
                 "PYTHONPATH": os.pathsep.join((str(tmp_path), str(compiled.PACKAGE.parent)))})
    assert (f"WARNING minikafka.broker: {source} changed since the compiled modules were built"
            in run.stderr)
    assert run.returncode == 1


def test_a_module_a_compiled_one_imports_edited_after_compiling_is_stale(tmp_path: Path) -> None:
    """mypyc compiles a module knowing the types of what it imports (a named tuple's fields are
    read by position): an edit to one of them, even through another module, is as stale."""
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    (tmp_path / "log").mkdir()
    (tmp_path / "log/partition.py").write_text(
        "from .txn_index import AbortedTxn\nfrom .. import errors\n")
    (tmp_path / "log/partition" f"{suffix}").write_bytes(b"")
    (tmp_path / "log/txn_index.py").write_text(f"from {tmp_path.name}.records import Batch\n")
    for name in ("errors", "records", "unrelated"):
        (tmp_path / f"{name}.py").write_text("x = 1\n")
    for name in ("log/txn_index.py", "records.py", "unrelated.py"):
        later = (tmp_path / name).stat().st_mtime + 60
        os.utime(tmp_path / name, (later, later))
    assert compiled.stale(tmp_path) == [tmp_path / "log/txn_index.py", tmp_path / "records.py"]
