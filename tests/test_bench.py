"""Every section of `python -m bench` at least imports (they run only under `make bench`)."""

from __future__ import annotations

import importlib

import pytest
from bench.__main__ import modules


@pytest.mark.parametrize("name", modules([]))
def test_bench_section_imports(name: str) -> None:
    assert callable(importlib.import_module(f"bench.{name}").run)
