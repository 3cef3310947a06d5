"""Issue 16's goals as this run measured them: each section records its figures here, and
`python -m bench` ends with one table of them, measured / target / met."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table


@dataclass(frozen=True, slots=True)
class Goal:
    name: str
    measured: float | None  # None: the run could not measure it
    target: float
    at_most: bool  # the target is an upper bound
    unit: str

    @property
    def met(self) -> bool:
        if self.measured is None:
            return False
        return self.measured <= self.target if self.at_most else self.measured >= self.target


_recorded: list[Goal] = []


def record(name: str, measured: float | None, target: float, *, at_most: bool = False,
           unit: str = "") -> None:
    _recorded.append(Goal(name, measured, target, at_most, unit))


def _figure(value: float, unit: str) -> str:
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}"
    return f"{text} {unit}".strip()


def summary() -> Table | None:
    """The goals recorded by the sections that ran, or None if none did."""
    if not _recorded:
        return None
    table = Table(title="issue 16 goals, as measured in this run", title_justify="left")
    for column in ("goal", "measured", "target", "met"):
        table.add_column(column, justify="left" if column == "goal" else "right")
    for goal in _recorded:
        table.add_row(goal.name,
                      "not measured" if goal.measured is None
                      else _figure(goal.measured, goal.unit),
                      ("≤ " if goal.at_most else "≥ ") + _figure(goal.target, goal.unit),
                      "yes" if goal.met else "no")
    return table
