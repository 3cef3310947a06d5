"""The wall clock in milliseconds, as Kafka's timestamps and timeouts count it; one place that
the broker, the transaction log and the clients all import without importing each other."""
from __future__ import annotations

import time


def wall_ms() -> int:
    return int(time.time() * 1000)
