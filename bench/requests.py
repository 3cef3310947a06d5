"""Broker CPU per request: pipelined raw requests against `minikafka serve`, no client library.

Issue 16's per-request goals: a small Produce (one 100-byte record, acks=1) in at most 15 µs of
broker CPU, an empty long-poll Fetch wake-up (nothing to return, answered when max_wait_ms runs
out) in at most 10 µs. Each request is encoded once and its bytes sent again and again over a few
connections, `WINDOW` unanswered on each, so the client costs almost nothing and the broker's CPU
time (its process's CPU clock, to the ns) divided by the requests answered is the figure.
The median of `repeats` runs is shown; BENCH_QUICK=1 runs fewer, shorter ones. A Produce is also
measured unpipelined, each sent alone once the one before is answered, as a producer with
linger.ms=0 and few records sends them: each then pays for its own read, write and answer. Beside
it, the same frames sent back by a bare asyncio server (bench/_echo.py) show what an unpipelined
request costs the event loop and the system calls alone, before the broker does anything.
"""

from __future__ import annotations

import os
import socket
import statistics
import struct
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
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

from ._goals import record
from .broker import Server, started

TOPIC = "requests"
PARTITIONS = 64  # fetches ask for them all, as a consumer of many partitions does
CONNECTIONS = 2
WINDOW = 32  # unanswered requests per connection
PRODUCE_GOAL_US = 15.0
FETCH_GOAL_US = 10.0
FETCH_WAIT_MS = 1  # the long poll each empty fetch waits out
WIDE_TOPIC = "requests-wide"  # a consumer of many partitions, with and without a fetch session
WIDE_PARTITIONS = 1000


@dataclass(frozen=True, slots=True)
class Plan:
    produces: int  # per connection, per run
    alone: int  # unpipelined produces, per connection, per run
    fetches: int
    wide_fetches: int  # of WIDE_PARTITIONS partitions
    repeats: int


FULL = Plan(produces=20_000, alone=5_000, fetches=5_000, wide_fetches=200, repeats=5)
QUICK = Plan(produces=3_000, alone=1_000, fetches=1_000, wide_fetches=50, repeats=3)


def frame(request: Any, correlation_id: int = 1) -> bytes:
    request.with_header(correlation_id=correlation_id, client_id="bench")
    return bytes(request.encode(header=True, framed=True))


def produce_frame() -> bytes:
    cls = ProduceRequest[7]
    batch = encode_batch([Record(b"x" * 100)])
    return frame(cls(transactional_id=None, acks=1, timeout_ms=5000, topic_data=[
        cls.TopicProduceData(name=TOPIC, partition_data=[
            cls.TopicProduceData.PartitionProduceData(index=0, records=batch)])]))


def fetch_frame(offsets: dict[int, int], topic: str = TOPIC, session_id: int = 0,
                epoch: int = -1) -> bytes:
    """A fetch of the partitions in `offsets` from there (their ends: nothing to return);
    sessionless by default."""
    cls = FetchRequest[12]
    return frame(cls(
        replica_id=-1, max_wait_ms=FETCH_WAIT_MS, min_bytes=1, max_bytes=50 << 20,
        isolation_level=0, session_id=session_id, session_epoch=epoch, topics=[cls.FetchTopic(
            topic=topic, partitions=[cls.FetchTopic.FetchPartition(
                partition=p, current_leader_epoch=-1, fetch_offset=offset, last_fetched_epoch=-1,
                log_start_offset=-1, partition_max_bytes=1 << 20)
                for p, offset in sorted(offsets.items())])] if offsets else [],
        forgotten_topics_data=[], rack_id=""))


def fetch_session(address: tuple[str, int], offsets: dict[int, int]) -> int:
    """Open a fetch session of WIDE_TOPIC's partitions at `offsets`; its id."""
    answer = request_once(address, fetch_frame(offsets, WIDE_TOPIC, epoch=0))
    return int(struct.unpack_from(">i", answer, 4 + 1 + 4 + 2)[0])  # header v1, throttle, error


def incremental(session_id: int, count: int) -> list[bytes]:
    """The session's next `count` fetches, naming no partition: nothing changed."""
    return [fetch_frame({}, WIDE_TOPIC, session_id, epoch) for epoch in range(1, count + 1)]


def request_once(address: tuple[str, int], payload: bytes) -> bytes:
    """Send one framed request; its answer's body."""
    with socket.create_connection(address, timeout=30) as sock, sock.makefile("rb") as answers:
        sock.sendall(payload)
        size = struct.unpack(">i", answers.read(4))[0]
        return bytes(answers.read(size))


def pipeline(address: tuple[str, int], frames: Sequence[bytes], window: int) -> None:
    """Send `frames` in order keeping `window` unanswered; read every answer."""
    count = len(frames)
    with socket.create_connection(address, timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sent = answered = 0
        pending = bytearray()
        while answered < count:
            burst = min(window - (sent - answered), count - sent)
            if burst > 0:
                sock.sendall(b"".join(frames[sent:sent + burst]))
                sent += burst
            pending += sock.recv(1 << 20) or b""
            while len(pending) >= 4:
                size = struct.unpack_from(">i", pending)[0]
                if len(pending) < 4 + size:
                    break
                del pending[:4 + size]
                answered += 1


def cpu_per_request(server: Server, address: tuple[str, int], streams: list[Sequence[bytes]],
                    window: int = WINDOW) -> float:
    """Broker CPU µs per request, each stream of frames pipelined on a connection of its own."""
    threads = [threading.Thread(target=pipeline, args=(address, frames, window))
               for frames in streams]
    before = server.cpu_seconds()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return (server.cpu_seconds() - before) / sum(map(len, streams)) * 1e6


def repeated(payload: bytes, count: int) -> list[Sequence[bytes]]:
    """The same request `count` times on each of CONNECTIONS connections."""
    return [[payload] * count for _ in range(CONNECTIONS)]


@contextmanager
def broker(tmp: Path) -> Iterator[Server]:
    port = free_port()
    argv = [sys.executable, "-m", "minikafka", "serve", "--data-dir", str(tmp / "data"),
            "--host", "127.0.0.1", "--port", str(port), "--flush", "never",
            "--log-level", "WARNING"]
    with started("minikafka", argv, port, tmp / "minikafka.log",
                 {"MINIKAFKA_UI": "false"}) as server:
        yield server


def create_topic(address: tuple[str, int], name: str = TOPIC, partitions: int = PARTITIONS
                 ) -> None:
    cls = CreateTopicsRequest[7]
    request_once(address, frame(cls(topics=[cls.CreatableTopic(
        name=name, num_partitions=partitions, replication_factor=1, assignments=[],
        configs=[])], timeout_ms=30_000, validate_only=False)))


@dataclass(frozen=True, slots=True)
class Figures:
    produce_us: float
    produce_alone_us: float  # unpipelined
    echo_alone_us: float  # the same, sent back by bench/_echo.py: the event loop's floor
    fetch_us: float  # of one partition
    wide_fetch_us: float  # of every partition of TOPIC
    full_us: float  # WIDE_TOPIC's partitions, sessionless
    session_us: float  # WIDE_TOPIC's partitions, incremental


@contextmanager
def echo(tmp: Path) -> Iterator[Server]:
    port = free_port()
    with started("echo", [sys.executable, "-m", "bench._echo", str(port)], port,
                 tmp / "echo.log") as server:
        yield server


def measure(plan: Plan) -> Figures:
    with tempfile.TemporaryDirectory(prefix="bench-requests-") as tmp, broker(Path(tmp)) as server:
        address = ("127.0.0.1", server.port)
        create_topic(address)
        create_topic(address, WIDE_TOPIC, WIDE_PARTITIONS)
        produce = produce_frame()
        produces = [cpu_per_request(server, address, repeated(produce, plan.produces))
                    for _ in range(plan.repeats)]
        alone = statistics.median(
            cpu_per_request(server, address, repeated(produce, plan.alone), window=1)
            for _ in range(plan.repeats))
        # Every partition at its end: partition 0 holds what was produced above.
        ends = dict.fromkeys(range(PARTITIONS), 0)
        ends[0] = plan.repeats * (plan.produces + plan.alone) * CONNECTIONS
        figures = []
        for fetch in (fetch_frame({0: ends[0]}), fetch_frame(ends)):
            figures.append(statistics.median(
                cpu_per_request(server, address, repeated(fetch, plan.fetches))
                for _ in range(plan.repeats)))
        wide = dict.fromkeys(range(WIDE_PARTITIONS), 0)
        figures.append(statistics.median(
            cpu_per_request(server, address, repeated(fetch_frame(wide, WIDE_TOPIC),
                                                      plan.wide_fetches))
            for _ in range(plan.repeats)))
        figures.append(statistics.median(
            cpu_per_request(server, address, [
                incremental(fetch_session(address, wide), plan.wide_fetches)
                for _ in range(CONNECTIONS)])
            for _ in range(plan.repeats)))
        with echo(Path(tmp)) as floor:
            echoed = statistics.median(
                cpu_per_request(floor, ("127.0.0.1", floor.port),
                                repeated(produce, plan.alone), window=1)
                for _ in range(plan.repeats))
    return Figures(statistics.median(produces), alone, echoed, *figures)


def current_plan() -> Plan:
    return QUICK if os.environ.get("BENCH_QUICK") else FULL


def table(figures: Figures) -> Table:
    out = Table(title=f"Broker CPU per request ({CONNECTIONS} connections, {WINDOW} pipelined "
                      "on each; median)")
    for column in ("request", "µs of broker CPU", "goal", "met"):
        out.add_column(column, justify="right" if column != "request" else "left")
    rows = (("Produce, 1 record of 100 B, acks=1", figures.produce_us, PRODUCE_GOAL_US),
            ("Produce, 1 record of 100 B, acks=1, unpipelined (one at a time)",
             figures.produce_alone_us, None),
            ("  the event loop's floor: the same, echoed by a bare asyncio server",
             figures.echo_alone_us, None),
            (f"Fetch of 1 partition, empty, {FETCH_WAIT_MS} ms long poll", figures.fetch_us,
             FETCH_GOAL_US),
            (f"Fetch of {PARTITIONS} partitions, empty, {FETCH_WAIT_MS} ms long poll",
             figures.wide_fetch_us, None),
            (f"Fetch of {WIDE_PARTITIONS} partitions, empty, sessionless", figures.full_us, None),
            (f"Fetch of {WIDE_PARTITIONS} partitions, empty, incremental session",
             figures.session_us, None))
    for name, measured, goal in rows:
        out.add_row(name, f"{measured:.1f}", "" if goal is None else f"≤ {goal:.0f}",
                    "" if goal is None else "yes" if measured <= goal else "no")
    return out


def run(plan: Plan | None = None) -> list[Table]:
    figures = measure(plan or current_plan())
    record("broker CPU per small Produce (1 record, acks=1)", figures.produce_us,
           PRODUCE_GOAL_US, at_most=True, unit="µs")
    record("broker CPU per empty long-poll Fetch wake-up", figures.fetch_us, FETCH_GOAL_US,
           at_most=True, unit="µs")
    return [table(figures)]
