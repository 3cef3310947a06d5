"""Every request's count and time, by API version, as plain numbers (Kafka's RequestMetrics):
metrics.py makes them the request and latency families when /metrics is scraped. Compiled
(mypyc): each request is counted here, by the compiled dispatcher mostly.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from kafka.protocol.api_key import ApiKey

from ..protocol.codec import RequestHeader

# Requests take from ~50 µs (metadata) to the long-poll and rebalance waits clients ask for.
# (Of no fixed length to mypyc, which would unbox and box a fixed one's items at each use.)
REQUEST_BUCKETS: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                      0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ApiCounts:
    """One API version's requests: how many took each latency bucket's time (the last: longer),
    and their total time."""

    __slots__ = ("buckets", "created", "labels", "seconds")

    def __init__(self, api: str, version: str) -> None:
        self.labels = [api, version]
        self.buckets = [0] * (len(REQUEST_BUCKETS) + 1)
        self.seconds = 0.0
        self.created = time.time()


def _no_errors(_api: str, _answer: Any) -> None:
    """No error counter attached."""


class RequestMetrics:
    """The counts of each API version answered (`per_api`); `on_errors(api name, answer)` is
    given the answers that are response objects, whose error codes are counted elsewhere."""

    def __init__(self) -> None:
        self.per_api: dict[tuple[int, int], ApiCounts] = {}
        self.on_errors: Callable[[str, Any], None] = _no_errors

    def answered(self, header: RequestHeader, seconds: float, answer: Any) -> None:
        """A request took `seconds` to answer with `answer` (a response object, pieces already
        encoded, or None): count it, time it, and count the error codes it carries."""
        key = (header.api_key, header.api_version)
        counts = self.per_api.get(key)
        if counts is None:
            counts = self.per_api[key] = ApiCounts(ApiKey(header.api_key).name,
                                                   str(header.api_version))
        counts.buckets[bisect_left(REQUEST_BUCKETS, seconds)] += 1
        counts.seconds += seconds
        if answer is not None and not isinstance(answer, list):  # Fetch counts its own
            self.on_errors(counts.labels[0], answer)
