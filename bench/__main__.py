"""Run every benchmark module in this package (or those named on the command line)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

from rich.console import Console

import bench
from bench._goals import summary


def modules(names: list[str]) -> list[str]:
    found = sorted(m.name for m in pkgutil.iter_modules(bench.__path__)
                   if not m.name.startswith("_"))
    unknown = set(names) - set(found)
    if unknown:
        sys.exit(f"unknown benchmark {', '.join(sorted(unknown))} (have: {', '.join(found)})")
    return [m for m in found if not names or m in names]


def main(argv: list[str]) -> None:
    console = Console()
    for name in modules(argv):
        module = importlib.import_module(f"bench.{name}")
        run = getattr(module, "run", None)
        if run is None:
            continue  # a helper module, not a section
        console.rule(f"[bold]bench.{name}")
        started = time.perf_counter()
        for table in run():
            console.print(table)
        console.print(f"[dim]bench.{name}: {time.perf_counter() - started:.1f} s[/dim]\n")
    goals = summary()
    if goals is not None:
        console.print(goals)


if __name__ == "__main__":
    main(sys.argv[1:])
