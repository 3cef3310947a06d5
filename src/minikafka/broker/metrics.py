"""Prometheus metrics of one broker: counted by cheap hooks on the hot path, or read at scrape time.

A request costs a dictionary lookup and two additions to plain numbers (its latency bucket and
total time, kept by request_metrics.py, compiled; plus a look at its answer's error codes);
produce and fetch add two per partition, never per record: records in are the batch's offsets,
records out the offsets a fetch slice spans. Those numbers become the request, latency, error
and traffic families only when /metrics is scraped (_HotCollector): prometheus_client's counters
take a lock and a method call or three per increment, which was ~8 % of a small Produce. Log
sizes, segment counts and consumer lag are read at scrape time too. Each broker owns its registry
rather than the process-wide default, so several brokers can share a process (tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from functools import cache
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ..errors import ErrorCode
from ..log import FileSlice, LogManager
from ..log.cleaner import CleanResult
from ..protocol.fetch import PartitionData
from .appends import GroupCommit
from .fetch_sessions import FetchPartition
from .request_metrics import REQUEST_BUCKETS, RequestMetrics
from .snapshot import all_partitions, committed_offsets

# One fdatasync costs ~130 µs on this class of machine; a busy disk takes milliseconds.
FSYNC_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                 0.25, 1.0)
# The buckets' `le` labels, as prometheus_client writes them.
_LE = tuple(floatToGoString(b) for b in (*REQUEST_BUCKETS, float("inf")))  # type: ignore[no-untyped-call]


class Traffic(NamedTuple):
    """Totals since the broker started, over every topic."""

    bytes_in: float
    records_in: float
    bytes_out: float
    records_out: float


_TRAFFIC_HELP = {
    "bytes_in": "Record batch bytes appended",
    "records_in": "Records appended (the batch headers' record counts)",
    "bytes_out": "Record batch bytes served to fetches",
    "records_out": "Records served to fetches, from each fetch offset on",
}


class _Count:
    """One labelled counter's value, and when it appeared (the `_created` sample)."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value = 0
        self.created = time.time()


class _TopicCounts:
    """One topic's traffic, in `Traffic`'s order."""

    __slots__ = ("created", "values")

    def __init__(self) -> None:
        self.values = [0, 0, 0, 0]
        self.created = time.time()


class BrokerMetrics:
    """A broker's registry and the hooks that feed it: `requests.answered` for every request
    (called where requests are handled), `produced`/`fetched` per partition, and `attach`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.started = time.time()
        reg = self.registry
        ProcessCollector(registry=reg)
        self.requests = RequestMetrics()
        self.requests.on_errors = self._answer_errors
        self._errors: dict[tuple[str, str], _Count] = {}
        self._per_topic: dict[str, _TopicCounts] = {}
        reg.register(_HotCollector(self))
        self.storage_errors = Counter(
            "minikafka_storage_errors",
            "Writes to the data directory that failed (disk full, quota, I/O error); each "
            "refused the change it was part of", registry=reg)
        self.connections = Gauge("minikafka_connections", "Open client connections",
                                 registry=reg)
        self.fsync_seconds = Histogram(
            "minikafka_fsync_duration_seconds",
            "Group-commit fsyncs that acks=all produces and offset commits wait for (flush "
            "policy 'always')",
            buckets=FSYNC_BUCKETS, registry=reg)
        self.cleaner_bytes = Counter(
            "minikafka_log_cleaner_bytes", "Log bytes the cleaner read from compacted "
            "partitions (their segments rewritten)", registry=reg)
        self.cleaner_records_removed = Counter(
            "minikafka_log_cleaner_records_removed",
            "Records the cleaner removed (superseded by a later one of the same key, or "
            "tombstones past delete.retention.ms)", registry=reg)
        self.cleaner_last_run = Gauge(
            "minikafka_log_cleaner_last_run_timestamp_seconds",
            "When the cleaner last cleaned a partition (Unix time; 0: never)", registry=reg)
        self.open_connections: Callable[[], int] = lambda: 0  # set by `attach`

    def attach(self, log: LogManager, commits: GroupCommit,
               open_connections: Callable[[], int]) -> None:
        """Hook into a starting broker: time the group-commit fsyncs, count connections, and
        read log sizes and consumer lag whenever the registry is collected."""
        commits.on_flush = self.fsync_seconds.observe
        self.open_connections = open_connections
        self.connections.set_function(open_connections)
        self.registry.register(_StateCollector(log))

    def cleaned(self, result: CleanResult) -> None:
        """The log cleaner cleaned a partition (called from its thread)."""
        self.cleaner_bytes.inc(result.bytes_read)
        self.cleaner_records_removed.inc(result.records_removed)
        self.cleaner_last_run.set(time.time())

    # --- hooks on the hot path ----------------------------------------------------------------

    def _answer_errors(self, api: str, answer: Any) -> None:
        """Count the error codes a response object carries (RequestMetrics.on_errors)."""
        for code in _error_codes(answer, []):
            self.error(api, code)

    def error(self, api: str, code: int) -> None:
        """Count an error code an answer carried, by its Kafka name."""
        try:
            name = ErrorCode(code).name
        except ValueError:
            name = str(code)
        count = self._errors.get((api, name))
        if count is None:
            count = self._errors[api, name] = _Count()
        count.value += 1

    def _topic(self, topic: str) -> list[int]:
        counts = self._per_topic.get(topic)
        if counts is None:
            counts = self._per_topic[topic] = _TopicCounts()
        return counts.values

    def produced(self, topic: str, size: int, records: int) -> None:
        """Batches of `size` bytes holding `records` were appended."""
        values = self._topic(topic)
        values[0] += size
        values[1] += records

    def fetched(self, answer: Sequence[tuple[FetchPartition, PartitionData]]) -> None:
        """A fetch is answered with `answer`: each partition as asked, and as served."""
        for asked, data in answer:
            if data.error_code:
                self.error("Fetch", data.error_code)
            elif isinstance(data.records, FileSlice) and asked.topic is not None:
                values = self._topic(asked.topic)
                values[2] += data.records.length
                values[3] += data.records.next_offset - asked.fetch_offset

    # --- reading ------------------------------------------------------------------------------

    def traffic(self) -> Traffic:
        """Totals over every topic, for the console's per-second rates."""
        topics = list(self._per_topic.values())
        return Traffic(*(float(sum(t.values[i] for t in topics)) for i in range(4)))


class _HotCollector(Collector):
    """The hot path's plain numbers as the families prometheus_client's Counter and Histogram
    exposed (same names, labels, help and `_created` samples), built when scraped. Lists are
    copied before iterating: the broker's loop may add a label set meanwhile."""

    def __init__(self, metrics: BrokerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        per_api = list(m.requests.per_api.values())
        requests = CounterMetricFamily("minikafka_requests",
                                       "Requests answered, by API and version",
                                       labels=["api", "version"])
        latency = HistogramMetricFamily(
            "minikafka_request_duration_seconds",
            "Time from a decoded request to its answer (long polls and rebalance waits included)",
            labels=["api", "version"])
        for counts in per_api:
            buckets, running = [], 0
            for le, n in zip(_LE, list(counts.buckets), strict=True):
                running += n
                buckets.append((le, float(running)))
            requests.add_metric(counts.labels, float(running), created=counts.created)
            latency.add_metric(counts.labels, buckets, counts.seconds)
            latency.add_sample("minikafka_request_duration_seconds_created",
                               dict(zip(("api", "version"), counts.labels, strict=True)),
                               counts.created)
        errors = CounterMetricFamily("minikafka_errors", "Error codes in answers, by API and error",
                                     labels=["api", "error"])
        for (api, name), count in list(m._errors.items()):
            errors.add_metric([api, name], float(count.value), created=count.created)
        traffic = [CounterMetricFamily(f"minikafka_topic_{name}", _TRAFFIC_HELP[name],
                                       labels=["topic"]) for name in Traffic._fields]
        for topic, topic_counts in list(m._per_topic.items()):
            for family, value in zip(traffic, list(topic_counts.values), strict=True):
                family.add_metric([topic], float(value), created=topic_counts.created)
        yield from (requests, latency, errors, *traffic)


class _StateCollector(Collector):
    """What is cheaper to read when scraped than to track: partitions' logs and consumer lag."""

    def __init__(self, log: LogManager) -> None:
        self.log = log

    def collect(self) -> Iterator[Metric]:
        labels = ["topic", "partition"]
        size = GaugeMetricFamily("minikafka_log_size_bytes",
                                 "Bytes in a partition's segment files", labels=labels)
        segments = GaugeMetricFamily("minikafka_log_segments", "Segments of a partition",
                                     labels=labels)
        start = GaugeMetricFamily("minikafka_log_start_offset",
                                  "First offset still in a partition", labels=labels)
        end = GaugeMetricFamily("minikafka_log_end_offset",
                                "High watermark: the offset a partition's next record gets",
                                labels=labels)
        damaged = CounterMetricFamily(
            "minikafka_log_damaged_bytes",
            "Bytes of damaged batches cut out of a partition's log (set aside as .damaged)",
            labels=labels)
        for views in all_partitions(self.log).values():
            for v in views:
                key = [v.topic, str(v.partition)]
                damaged.add_metric(key, v.damaged_bytes)
                size.add_metric(key, v.size)
                segments.add_metric(key, v.segments)
                start.add_metric(key, v.log_start_offset)
                end.add_metric(key, v.high_watermark)
        labels = ["group", "topic", "partition"]
        committed = GaugeMetricFamily("minikafka_consumer_group_committed_offset",
                                      "A consumer group's committed offset", labels=labels)
        lag = GaugeMetricFamily("minikafka_consumer_group_lag",
                                "Records between a group's committed offset and the high "
                                "watermark", labels=labels)
        for group in self.log.offsets.groups():
            for c in committed_offsets(self.log, group):
                key = [group, c.topic, str(c.partition)]
                committed.add_metric(key, c.committed)
                lag.add_metric(key, c.lag)
        yield from (size, segments, start, end, damaged, committed, lag)


def _error_codes(message: Any, found: list[int]) -> list[int]:
    """Add the non-zero error codes anywhere in a response object to `found`: a plain recursion
    into only the fields that can hold one (~1 µs for a produce answer)."""
    has_error, nested = _layout(message.__class__)
    if has_error and message.error_code:
        found.append(message.error_code)
    for name in nested:
        value = getattr(message, name)
        if value.__class__ is list:
            for item in value:
                _error_codes(item, found)
        elif value is not None:
            _error_codes(value, found)
    return found


@cache
def _layout(cls: type) -> tuple[bool, tuple[str, ...]]:
    """Whether a response class has an error code, and which of its fields hold structs that
    have one somewhere inside."""
    fields = cls.fields  # type: ignore[attr-defined]
    return "error_code" in fields, tuple(
        name for name, f in fields.items()
        if (f.is_struct() or f.is_struct_array()) and _holds_errors(f.data_class))


@cache
def _holds_errors(cls: type) -> bool:
    has_error, nested = _layout(cls)
    return has_error or bool(nested)
