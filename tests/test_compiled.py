"""The compiled modules (setup.py, mypyc) are their source: none is older than it, and a stale
one is found."""

from __future__ import annotations

import importlib.machinery
import os
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
