"""Benchmarks, run by `make bench` (`python -m bench [MODULE...]`).

Each module here that defines `run() -> list[rich.table.Table]` is one section; `__main__` finds
them, runs them in name order and prints their tables. Figures are for comparing, on one machine,
in one run: quote ratios, not absolutes.
"""
