"""The partitions a LogManager has opened, and the lookup every Produce and Fetch makes of them
(LogManager.partition). Compiled (mypyc): a call from the compiled request path then costs a
dictionary lookup, not an interpreted call (two of them per long poll)."""

from __future__ import annotations

from collections.abc import Callable

from .partition import Partition


class OpenPartitions:
    """Called as LogManager.partition(topic, index): the partition if open, else what
    `open_partition(topic, index)` returns (it opens it, or raises for an unknown one)."""

    __slots__ = ("open_partition", "partitions")

    def __init__(self, partitions: dict[tuple[str, int], Partition],
                 open_partition: Callable[[str, int], Partition]) -> None:
        self.partitions = partitions  # (topic, index) -> partition: the manager's own dict
        self.open_partition = open_partition

    def __call__(self, topic: str, index: int) -> Partition:
        found = self.partitions.get((topic, index))
        if found is not None:
            return found
        return self.open_partition(topic, index)
