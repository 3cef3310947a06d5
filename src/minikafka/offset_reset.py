"""Where resetting a consumer group's offsets puts a partition, as kafka-consumer-groups.sh
--reset-offsets plans it: one rule for the CLI and both consoles (in the broker's process, and
remote through the admin API), which differ only in how they read a partition's offsets."""

from __future__ import annotations

from typing import Literal

from .errors import ErrorCode, KafkaError

ResetTo = Literal["earliest", "latest", "offset", "timestamp"]


def check_reset(to: str, value: int | None) -> None:
    """A reset to an offset or a time needs one."""
    if to in ("offset", "timestamp") and value is None:
        raise KafkaError(f"resetting to {to} needs a value", ErrorCode.INVALID_REQUEST)


def reset_target(to: str, value: int | None, earliest: int, latest: int,
                 at_time: int | None = None) -> int:
    """The offset a reset `to` gives a partition whose log runs from `earliest` to `latest`:
    one end, the "offset" `value` kept within them, or for "timestamp" `at_time` (the first
    record at or after `value`; None if there is none: the log end)."""
    if to == "earliest":
        return earliest
    if to == "timestamp":
        return latest if at_time is None else at_time
    if to == "offset" and value is not None:
        return min(max(value, earliest), latest)
    return latest
