"""Broker CPU per request: pipelined raw requests against `minikafka serve`, no client library.

Issue 16's per-request goals: a small Produce (one 100-byte record, acks=1) in at most 15 µs of
broker CPU, an empty long-poll Fetch wake-up (nothing to return, answered when max_wait_ms runs
out) in at most 10 µs. Each request is encoded once and its bytes sent again and again over a few
connections, `WINDOW` unanswered on each, so the client costs almost nothing and the broker's CPU
time (its process's utime + stime from /proc) divided by the requests answered is the figure.
The median of `repeats` runs is shown; BENCH_QUICK=1 runs fewer, shorter ones.
"""

from __future__ import annotations

import os
import socket
import statistics
import struct
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka.protocol.admin import CreateTopicsRequest
from kafka.protocol.consumer import FetchRequest
from kafka.protocol.producer import ProduceRequest
from rich.table import Table

from minikafka.records import Record, encode_batch
from minikafka.shop.ports import free_port

from .broker import Server, started

TOPIC = "requests"
PARTITIONS = 64  # fetches ask for them all, as a consumer of many partitions does
CONNECTIONS = 2
WINDOW = 32  # unanswered requests per connection
PRODUCE_GOAL_US = 15.0
FETCH_GOAL_US = 10.0
FETCH_WAIT_MS = 1  # the long poll each empty fetch waits out


@dataclass(frozen=True, slots=True)
class Plan:
    produces: int  # per connection, per run
    fetches: int
    repeats: int


FULL = Plan(produces=20_000, fetches=5_000, repeats=5)
QUICK = Plan(produces=3_000, fetches=1_000, repeats=3)


def frame(request: Any, correlation_id: int = 1) -> bytes:
    request.with_header(correlation_id=correlation_id, client_id="bench")
    return bytes(request.encode(header=True, framed=True))


def produce_frame() -> bytes:
    cls = ProduceRequest[7]
    batch = encode_batch([Record(b"x" * 100)])
    return frame(cls(transactional_id=None, acks=1, timeout_ms=5000, topic_data=[
        cls.TopicProduceData(name=TOPIC, partition_data=[
            cls.TopicProduceData.PartitionProduceData(index=0, records=batch)])]))


def fetch_frame(offsets: dict[int, int], max_wait_ms: int = FETCH_WAIT_MS) -> bytes:
    """A sessionless fetch of every partition from `offsets` (their ends: nothing to return)."""
    cls = FetchRequest[12]
    return frame(cls(
        replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=50 << 20,
        isolation_level=0, session_id=0, session_epoch=-1, topics=[cls.FetchTopic(
            topic=TOPIC, partitions=[cls.FetchTopic.FetchPartition(
                partition=p, current_leader_epoch=-1, fetch_offset=offset, last_fetched_epoch=-1,
                log_start_offset=-1, partition_max_bytes=1 << 20)
                for p, offset in sorted(offsets.items())])],
        forgotten_topics_data=[], rack_id=""))


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return bytes(buf)


def request_once(address: tuple[str, int], payload: bytes) -> bytes:
    with socket.create_connection(address, timeout=30) as sock:
        sock.sendall(payload)
        size = struct.unpack(">i", _read_exactly(sock, 4))[0]
        return _read_exactly(sock, size)


def pipeline(address: tuple[str, int], payload: bytes, count: int, window: int) -> None:
    """Send `payload` `count` times keeping `window` unanswered; read every answer."""
    with socket.create_connection(address, timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sent = answered = 0
        pending = bytearray()
        while answered < count:
            burst = min(window - (sent - answered), count - sent)
            if burst > 0:
                sock.sendall(payload * burst)
                sent += burst
            pending += sock.recv(1 << 20) or b""
            while len(pending) >= 4:
                size = struct.unpack_from(">i", pending)[0]
                if len(pending) < 4 + size:
                    break
                del pending[:4 + size]
                answered += 1


def cpu_per_request(server: Server, address: tuple[str, int], payload: bytes, count: int) -> float:
    """Broker CPU µs per request over CONNECTIONS pipelined connections."""
    threads = [threading.Thread(target=pipeline, args=(address, payload, count, WINDOW))
               for _ in range(CONNECTIONS)]
    before = server.cpu_seconds()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return (server.cpu_seconds() - before) / (count * CONNECTIONS) * 1e6


@contextmanager
def broker(tmp: Path) -> Iterator[Server]:
    port = free_port()
    argv = [sys.executable, "-m", "minikafka", "serve", "--data-dir", str(tmp / "data"),
            "--host", "127.0.0.1", "--port", str(port), "--flush", "never",
            "--log-level", "WARNING"]
    with started("minikafka", argv, port, tmp / "minikafka.log",
                 {"MINIKAFKA_UI": "false"}) as server:
        yield server


def create_topic(address: tuple[str, int]) -> None:
    cls = CreateTopicsRequest[7]
    request_once(address, frame(cls(topics=[cls.CreatableTopic(
        name=TOPIC, num_partitions=PARTITIONS, replication_factor=1, assignments=[],
        configs=[])], timeout_ms=30_000, validate_only=False)))


@dataclass(frozen=True, slots=True)
class Figures:
    produce_us: float
    fetch_us: float  # of one partition
    wide_fetch_us: float  # of every partition


def measure(plan: Plan) -> Figures:
    with tempfile.TemporaryDirectory(prefix="bench-requests-") as tmp, broker(Path(tmp)) as server:
        address = ("127.0.0.1", server.port)
        create_topic(address)
        produce = produce_frame()
        produces = [cpu_per_request(server, address, produce, plan.produces)
                    for _ in range(plan.repeats)]
        # Every partition at its end: partition 0 holds what was produced above.
        ends = dict.fromkeys(range(PARTITIONS), 0)
        ends[0] = plan.repeats * plan.produces * CONNECTIONS
        figures = []
        for fetch in (fetch_frame({0: ends[0]}), fetch_frame(ends)):
            figures.append(statistics.median(cpu_per_request(server, address, fetch, plan.fetches)
                                             for _ in range(plan.repeats)))
    return Figures(statistics.median(produces), *figures)


def current_plan() -> Plan:
    return QUICK if os.environ.get("BENCH_QUICK") else FULL


def table(figures: Figures) -> Table:
    out = Table(title=f"Broker CPU per request ({CONNECTIONS} connections, {WINDOW} pipelined "
                      "on each; median)")
    for column in ("request", "µs of broker CPU", "goal", "met"):
        out.add_column(column, justify="right" if column != "request" else "left")
    rows = (("Produce, 1 record of 100 B, acks=1", figures.produce_us, PRODUCE_GOAL_US),
            (f"Fetch of 1 partition, empty, {FETCH_WAIT_MS} ms long poll", figures.fetch_us,
             FETCH_GOAL_US),
            (f"Fetch of {PARTITIONS} partitions, empty, {FETCH_WAIT_MS} ms long poll",
             figures.wide_fetch_us, None))
    for name, measured, goal in rows:
        out.add_row(name, f"{measured:.1f}", "" if goal is None else f"≤ {goal:.0f}",
                    "" if goal is None else "yes" if measured <= goal else "no")
    return out


def run(plan: Plan | None = None) -> list[Table]:
    return [table(measure(plan or current_plan()))]
