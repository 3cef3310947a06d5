"""Which of the package's modules run compiled, and which compiled ones are older than their
source or than the modules they import.

setup.py compiles the modules pyproject.toml lists (mypyc) into extension modules beside their
source, and an extension module shadows its source: after an edit, the old compiled code runs
until the package is rebuilt (`make` does). mypyc also compiles in what it knew of the modules
imported, directly or through others (a named tuple's fields are read by position, a class's
layout is fixed), so an edit to one of those makes the compiled module stale too.
`minikafka serve` warns of such a module and a test fails, so an edit never silently does
nothing, nor silently breaks compiled code.
"""

from __future__ import annotations

import ast
import importlib.machinery
import sys
from collections.abc import Iterable
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


def _module(root: Path, parts: list[str]) -> Path | None:
    """The source of the package module `parts` names under `root`, if there is one."""
    path = root.joinpath(*parts)
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imports(source: Path, root: Path) -> set[Path]:
    """The package's modules `source` imports itself (anywhere in it: mypy reads them all).
    `from .x import y` imports x, and y too if y is a module."""
    modules: list[list[str]] = []
    package = source.parent.relative_to(root).parts
    for node in ast.walk(ast.parse(source.read_bytes(), str(source))):
        if isinstance(node, ast.ImportFrom):
            named = node.module.split(".") if node.module else []
            if node.level:
                named = [*package[:len(package) + 1 - node.level], *named]
            elif named[0] == root.name:
                named = named[1:]
            else:
                continue
            for alias in node.names:
                modules += ([*named, alias.name], named)
        elif isinstance(node, ast.Import):
            modules += (name[1:] for alias in node.names
                        if (name := alias.name.split("."))[0] == root.name)
    return {path for parts in modules if (path := _module(root, parts)) is not None}


def build_inputs(sources: Iterable[Path], root: Path = PACKAGE,
                 parsed: dict[Path, set[Path]] | None = None) -> set[Path]:
    """`sources` and every package module they import, directly or through others (`parsed`:
    the imports of modules read before, kept for the next call)."""
    parsed = {} if parsed is None else parsed
    seen: set[Path] = set()
    todo = list(sources)
    while todo:
        source = todo.pop()
        if source not in seen:
            seen.add(source)
            if source not in parsed:
                parsed[source] = _imports(source, root)
            todo.extend(parsed[source])
    return seen


def stale(root: Path = PACKAGE) -> list[Path]:
    """Sources edited since a module compiled from them, or importing them, was compiled (the
    compiled one runs, built on what they were). Imports are read only when some source is
    newer than a compiled module (`minikafka serve` asks at every start)."""
    extensions = extension_sources(root)
    if not extensions:
        return []
    oldest = min(extension.stat().st_mtime for extension in extensions) + SLACK_SECONDS
    if not any(path.stat().st_mtime > oldest for path in root.rglob("*.py")):
        return []
    changed: set[Path] = set()
    parsed: dict[Path, set[Path]] = {}
    for extension, source in extensions.items():
        built = extension.stat().st_mtime + SLACK_SECONDS
        changed.update(path for path in build_inputs([source], root, parsed)
                       if path.stat().st_mtime > built)
    return sorted(changed)


if __name__ == "__main__":  # the Makefile: what the compiled modules are built from
    print(*sorted(build_inputs(Path(p).resolve() for p in sys.argv[1:])))
