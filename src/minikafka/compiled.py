"""Which of the package's modules run compiled, and which compiled ones are older than their
source.

setup.py compiles the modules pyproject.toml lists (mypyc) into extension modules beside their
source, and an extension module shadows its source: after an edit, the old compiled code runs
until the package is rebuilt (`make` does). `minikafka serve` warns of such a module and a test
fails, so an edit never silently does nothing.
"""

from __future__ import annotations

import importlib.machinery
from pathlib import Path

PACKAGE = Path(__file__).parent
SLACK_SECONDS = 2.0  # an installer writes a module's files a moment apart, in any order


def extension_sources(root: Path = PACKAGE) -> dict[Path, Path]:
    """Each compiled module under `root`, with the source beside it that it shadows."""
    found = {}
    for path in root.rglob("*.so"):
        # The longest suffix first: "x.cpython-311-x86_64-linux-gnu.so" is x's, not "x.cpython…"'s.
        suffix = next(s for s in importlib.machinery.EXTENSION_SUFFIXES if path.name.endswith(s))
        source = path.with_name(path.name[:-len(suffix)] + ".py")
        if source.exists():
            found[path] = source
    return found


def stale(root: Path = PACKAGE) -> list[Path]:
    """Sources edited since their module was compiled (the compiled one runs, not them)."""
    return sorted(source for extension, source in extension_sources(root).items()
                  if source.stat().st_mtime > extension.stat().st_mtime + SLACK_SECONDS)
