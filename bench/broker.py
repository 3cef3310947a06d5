"""The broker over the wire: minikafka with confluent-kafka beside Redis Streams and RabbitMQ.

Every server is started here, on 127.0.0.1 with a temporary data directory, and stopped after:
`minikafka serve` (flush `never`, and `always` for acks=all), `redis-server` (append-only file;
fsync `no` beside acks=1, `always` beside acks=all) and a throwaway RabbitMQ node (its own epmd,
ports, Mnesia and log directories). The clients are what a user of each would pick, tuned as
such a user would tune them:

- minikafka: confluent-kafka (librdkafka), producer batching with linger.ms / batch.size and no
  compression, consumer by `assign()` reading `consume(num_messages=...)` batches with large
  fetch sizes; kcat (librdkafka without Python) where installed, to show what the broker takes
  when the Python client is not the limit;
- Redis Streams: redis-py with hiredis, XADD pipelined, XREAD in batches;
- RabbitMQ: pika, a durable queue, persistent messages with publisher confirms (a window of
  unconfirmed messages on pika's asynchronous connection), consumed with prefetch and batched acks.

Workloads: produce and consume throughput of 100-byte records; end-to-end latency at a fixed
10,000 records/s (one producer without batching, the consumer in another process, the send time
in the value); MB/s both ways with 16 KiB records in 1 MiB batches. Throughput figures are the
median of `repeats` runs, each bounded in time and count. Each run also reports the CPU the
server used (its processes' utime + stime) and the benchmark process used (the client library's
threads included), as a share of one core: whichever is near 100 % is the limit. Set
BENCH_QUICK=1 (or `python -m bench.broker --quick`) for a smoke test of a few seconds per system.
"""

from __future__ import annotations

import ctypes
import functools
import multiprocessing
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from minikafka.shop.ports import free_port

from ._goals import record

VALUE = 100
LARGE_VALUE = 16 * 1024
LARGE_BATCH = 1024 * 1024
LATENCY_RATE = 10_000
LATENCY_WARMUP = 0.5  # seconds sent but not counted
STAMP = struct.Struct(">q")  # the send time, time.perf_counter_ns() (CLOCK_MONOTONIC on Linux)
START_TIMEOUT = 60.0

Sink = Callable[[list[bytes]], None]


@dataclass(frozen=True, slots=True)
class Plan:
    """How much one run may do; every loop stops at whichever bound it meets first."""

    seconds: float  # one throughput run
    records: int  # one 100-byte produce run
    large_bytes: int  # one large-record produce run
    latency_seconds: float
    repeats: int  # throughput runs per figure (the median is shown)


FULL = Plan(seconds=2.0, records=3_000_000, large_bytes=2 << 30, latency_seconds=5.0, repeats=3)
QUICK = Plan(seconds=0.3, records=100_000, large_bytes=32 << 20, latency_seconds=1.0, repeats=1)


def current_plan() -> Plan:
    return QUICK if os.environ.get("BENCH_QUICK") else FULL


# --- measuring ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    records: int
    size: int  # bytes per record
    seconds: float
    server_cpu: float  # CPU seconds of the server's processes during the run
    client_cpu: float  # CPU seconds of the client (this process and its client tools)

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    @property
    def mb_s(self) -> float:
        return self.rate * self.size / 1e6

    @property
    def server_share(self) -> float:
        return self.server_cpu / self.seconds

    @property
    def client_share(self) -> float:
        return self.client_cpu / self.seconds


def _client_cpu() -> float:
    """This process (all threads) plus waited-for children such as kcat."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(server: Server, size: int, work: Callable[[], int]) -> Run:
    """Run `work` (it returns the records it moved) and time it with both sides' CPU."""
    server_before, client_before = server.cpu_seconds(), _client_cpu()
    started = time.perf_counter()
    records = work()
    seconds = time.perf_counter() - started
    return Run(records, size, seconds, server.cpu_seconds() - server_before,
               _client_cpu() - client_before)


def median(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]


@dataclass(frozen=True, slots=True)
class Latency:
    sent: int
    received_ns: array  # one end-to-end latency per record, in ns
    server_share: float

    def percentile(self, p: float) -> float:
        """In milliseconds (NaN when nothing arrived)."""
        ordered = sorted(self.received_ns)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] / 1e6


def stamped(size: int) -> bytes:
    return STAMP.pack(time.perf_counter_ns()) + bytes(size - STAMP.size)


def paced(rate: int, seconds: float) -> Iterator[int]:
    """Yield how many records are due now, sleeping between, to send `rate` a second."""
    total = int(rate * seconds)
    started = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(total, int((time.perf_counter() - started) * rate) + 1)
        yield due - sent
        sent = due
        pause = started + sent / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)


# --- servers ------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


_LIBC = ctypes.CDLL(None, use_errno=True)


def process_cpu_seconds(pid: int) -> float | None:
    """The CPU time of a process (user and system, its threads included, ended ones too), to
    the ns: its CPU clock (clock_getcpuclockid). /proc's utime and stime count whole clock
    ticks (10 ms), which moved a 10 µs request's figure by 1 µs. None once it is gone."""
    clock = ctypes.c_int()
    if _LIBC.clock_getcpuclockid(pid, ctypes.byref(clock)) != 0:
        return None
    try:
        return time.clock_gettime(clock.value)
    except OSError:  # it ended meanwhile
        return None


class Server:
    """A server process started for the benchmark in its own session (so that a launcher script
    and what it starts stop together); its CPU time is that of its whole process tree."""

    def __init__(self, name: str, argv: list[str], port: int, log: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.port = port
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env={**os.environ, **(env or {})})
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited at start:\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"{name} did not listen on {port}:\n{self.log_tail()}") from None
                time.sleep(0.1)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def _tree(self) -> list[int]:
        parents: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit() and (fields := _stat(int(entry))) is not None:
                parents.setdefault(int(fields[1]), []).append(int(entry))
        tree, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(parents.get(pid, ()))
        return tree

    def cpu_seconds(self) -> float:
        return sum(seconds for pid in self._tree()
                   if (seconds := process_cpu_seconds(pid)) is not None)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@contextmanager
def started(name: str, argv: list[str], port: int, log: Path,
            env: dict[str, str] | None = None) -> Iterator[Server]:
    server = Server(name, argv, port, log, env)
    try:
        yield server
    finally:
        server.stop()


# --- the systems --------------------------------------------------------------------------------


class Reader(ABC):
    """A consumer connected to one stream, positioned at its start, not yet reading."""

    @abstractmethod
    def drain(self, expected: int, deadline: float, sink: Sink) -> int:
        """Hand records to `sink` in batches until `expected` of them or `deadline`
        (time.monotonic()); return the count."""

    @abstractmethod
    def close(self) -> None: ...


class Target(ABC):
    """One system under test, reached at `address` ("host:port") through its usual client."""

    reader: Callable[[str, str], Reader]  # (address, stream) -> Reader; usable in a child process

    def __init__(self, server: Server) -> None:
        self.server = server
        self.address = f"127.0.0.1:{server.port}"

    @abstractmethod
    def prepare(self, stream: str) -> None:
        """Create the topic / stream / queue, so a reader can wait on it before any write."""

    @abstractmethod
    def drop(self, stream: str) -> None:
        """Delete a stream that has been read, to keep memory and disk in bounds."""

    @abstractmethod
    def produce(self, stream: str, size: int, records: int, seconds: float) -> int:
        """Send up to `records` of `size` bytes for up to `seconds`, batched for throughput;
        return how many were acknowledged."""

    @abstractmethod
    def send_paced(self, stream: str, rate: int, seconds: float) -> int:
        """Send stamped 100-byte records one by one at `rate` a second; return the count."""


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def kafka_producer_config(address: str, acks: str, size: int) -> dict[str, object]:
    """Batching as a Kafka user tunes it for throughput: a few ms of linger, big batches."""
    return {"bootstrap.servers": address, "acks": acks, "linger.ms": 5,
            "batch.size": LARGE_BATCH if size > VALUE else 1_000_000,
            "message.max.bytes": LARGE_BATCH + 12, "compression.type": "none",
            "queue.buffering.max.messages": 1_000_000, "queue.buffering.max.kbytes": 1 << 20}


# Fetch sizes for throughput; fetch.queue.backoff.ms: librdkafka otherwise pauses fetching for a
# second whenever its prefetch queue is full (the default halves the consume rate here).
KAFKA_CONSUMER = {"group.id": "bench", "enable.auto.commit": False,
                  "fetch.max.bytes": 64 << 20, "max.partition.fetch.bytes": 32 << 20,
                  "queued.max.messages.kbytes": 256 << 10, "fetch.queue.backoff.ms": 1,
                  "fetch.wait.max.ms": 10}


class KafkaReader(Reader):
    def __init__(self, address: str, stream: str, settings: dict[str, object] | None = None
                 ) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self.consumer = Consumer({"bootstrap.servers": address, **KAFKA_CONSUMER,
                                  **(settings or {})})
        self.consumer.list_topics(stream, timeout=30)  # connected
        self.consumer.assign([TopicPartition(stream, 0, 0)])

    def drain(self, expected: int, deadline: float, sink: Sink) -> int:
        got = 0
        consume = self.consumer.consume
        while got < expected and time.monotonic() < deadline:
            # What is there already; if nothing, wait for the first record only (a batch call
            # with a timeout waits for the whole batch or the whole timeout).
            batch = consume(num_messages=100_000, timeout=0) or consume(num_messages=1,
                                                                         timeout=0.1)
            values = [m.value() for m in batch]
            got += len(values)
            sink(values)
        return got

    def close(self) -> None:
        self.consumer.close()


class MiniKafka(Target):
    """`settings`: the clients' security settings for the listener on `port` (default: the
    server's own port, PLAINTEXT)."""

    def __init__(self, server: Server, acks: str = "1", settings: dict[str, object] | None = None,
                 port: int | None = None) -> None:
        super().__init__(server)
        from confluent_kafka.admin import AdminClient

        self.acks = acks
        self.settings = settings or {}
        if port is not None:
            self.address = f"127.0.0.1:{port}"
        self.reader = functools.partial(KafkaReader, settings=self.settings)
        self.admin = AdminClient({"bootstrap.servers": self.address, **self.settings})

    def prepare(self, stream: str) -> None:
        from confluent_kafka.admin import NewTopic

        self.admin.create_topics([NewTopic(stream, 1)])[stream].result(30)

    def drop(self, stream: str) -> None:
        self.admin.delete_topics([stream])[stream].result(30)

    def _producer(self, stream: str, config: dict[str, object]) -> Any:
        from confluent_kafka import Producer

        producer = Producer(config)
        producer.list_topics(stream, timeout=30)  # connected before the clock starts
        return producer

    def produce(self, stream: str, size: int, records: int, seconds: float) -> int:
        producer = self._producer(stream, {
            **kafka_producer_config(self.address, self.acks, size), **self.settings})
        value = bytes(size)
        produce, poll = producer.produce, producer.poll
        deadline = time.perf_counter() + seconds
        sent = 0
        while sent < records and time.perf_counter() < deadline:
            chunk = min(10_000, records - sent)
            for _ in range(chunk):
                while True:
                    try:
                        produce(stream, value)
                        break
                    except BufferError:  # the client's queue is full: let it send
                        poll(0.005)
            sent += chunk
            poll(0)
        if producer.flush(60):
            raise RuntimeError("minikafka: records left unacknowledged")
        return sent

    def send_paced(self, stream: str, rate: int, seconds: float) -> int:
        producer = self._producer(stream, {"bootstrap.servers": self.address, "acks": "1",
                                           "linger.ms": 0, **self.settings})
        sent = 0
        for due in paced(rate, seconds):
            for _ in range(due):
                producer.produce(stream, stamped(VALUE))
            producer.poll(0)
            sent += due
        producer.flush(30)
        return sent


class Kcat:
    """librdkafka's command-line client: the broker's figures without Python in the client
    (its start-up, ~0.1 s, is inside its timings)."""

    @staticmethod
    def available() -> bool:
        return shutil.which("kcat") is not None

    @staticmethod
    def produce(address: str, stream: str, source: Path, records: int) -> int:
        settings = kafka_producer_config(address, "1", VALUE)
        del settings["bootstrap.servers"]
        with open(source, "rb") as stdin:
            subprocess.run(["kcat", "-P", "-q", "-b", address, "-t", stream,
                            *(f"-X{k}={v}" for k, v in settings.items())],
                           stdin=stdin, check=True, timeout=120)
        return records

    @staticmethod
    def consume(address: str, stream: str) -> int:
        settings = {k: v for k, v in KAFKA_CONSUMER.items() if k != "fetch.queue.backoff.ms"}
        out = subprocess.run(  # one byte per record; its librdkafka has no fetch.queue.backoff
            ["kcat", "-C", "-q", "-e", "-o", "beginning", "-f", ".", "-b", address, "-t", stream,
             *(f"-X{k}={v}" for k, v in settings.items() if k != "group.id")],
            stdout=subprocess.PIPE, check=True, timeout=120).stdout
        return len(out)


class RedisReader(Reader):
    def __init__(self, address: str, stream: str) -> None:
        import redis

        self.client = redis.Redis(port=_port(address))
        self.client.ping()
        self.stream = stream

    def drain(self, expected: int, deadline: float, sink: Sink) -> int:
        last, got = b"0-0", 0
        while got < expected and time.monotonic() < deadline:
            answer = self.client.xread({self.stream: last}, count=10_000, block=100)
            if answer:
                entries = answer[0][1]
                last = entries[-1][0]
                got += len(entries)
                sink([fields[b"v"] for _id, fields in entries])
        return got

    def close(self) -> None:
        self.client.close()


class Redis(Target):
    reader = RedisReader
    PIPELINE_BYTES = 128 * 1024  # XADDs per round trip: 1,310 small ones, 8 large ones

    def __init__(self, server: Server) -> None:
        super().__init__(server)
        import redis

        self.client = redis.Redis(port=server.port)

    def prepare(self, stream: str) -> None:
        self.client.delete(stream)

    def drop(self, stream: str) -> None:
        self.client.delete(stream)

    def fsync(self, always: bool) -> None:
        """The append-only file's fsync: `always` is acks=all's peer, `no` acks=1's."""
        self.client.config_set("appendfsync", "always" if always else "no")

    def produce(self, stream: str, size: int, records: int, seconds: float) -> int:
        value = bytes(size)
        per_trip = max(1, self.PIPELINE_BYTES // size)
        deadline = time.perf_counter() + seconds
        pipe = self.client.pipeline(transaction=False)
        sent = 0
        while sent < records and time.perf_counter() < deadline:
            chunk = min(per_trip, records - sent)
            for _ in range(chunk):
                pipe.xadd(stream, {"v": value})
            pipe.execute()
            sent += chunk
        return sent

    def send_paced(self, stream: str, rate: int, seconds: float) -> int:
        sent = 0
        for due in paced(rate, seconds):
            for _ in range(due):
                self.client.xadd(stream, {"v": stamped(VALUE)})
            sent += due
        return sent


def _amqp(port: int) -> Any:
    import pika

    return pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))


class RabbitReader(Reader):
    """basic_consume with a prefetch window, acknowledging in batches (multiple=True)."""

    PREFETCH = 1000

    def __init__(self, address: str, stream: str) -> None:
        self.connection = _amqp(_port(address))
        self.channel = self.connection.channel()
        self.channel.basic_qos(prefetch_count=self.PREFETCH)
        self.pending: list[bytes] = []
        self.last_tag = 0
        self.channel.basic_consume(stream, self._deliver)

    def _deliver(self, _channel: object, method: Any, _properties: object, body: bytes) -> None:
        self.pending.append(body)
        self.last_tag = method.delivery_tag

    def drain(self, expected: int, deadline: float, sink: Sink) -> int:
        got = 0
        while got < expected and time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=0)
            if not self.pending:
                self.connection.process_data_events(time_limit=0.01)
                continue
            self.channel.basic_ack(self.last_tag, multiple=True)
            got += len(self.pending)
            sink(self.pending)
            self.pending = []
        return got

    def close(self) -> None:
        self.connection.close()


class _RabbitPublisher:
    """Persistent messages with publisher confirms, up to `window` of them unconfirmed, on
    pika's asynchronous connection (its blocking one waits for every confirm)."""

    def __init__(self, port: int, queue: str, window: int, value: Callable[[], bytes],
                 due: Callable[[float], int], total: int) -> None:
        import pika

        self.ack = pika.spec.Basic.Ack
        self.queue, self.window, self.value, self.due, self.total = queue, window, value, due, total
        self.properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
        self.published = self.confirmed = 0
        self.started = 0.0
        self.seconds = float("inf")
        self.channel: Any = None
        self.error: object = None
        self.connection = pika.SelectConnection(
            pika.ConnectionParameters("127.0.0.1", port), on_open_callback=self._opened,
            on_open_error_callback=self._failed, on_close_callback=self._closed)

    def run(self, seconds: float) -> int:
        """Publish for up to `seconds`; return how many were confirmed."""
        self.seconds = seconds
        self.connection.ioloop.start()
        if self.error is not None:
            raise RuntimeError(f"RabbitMQ publisher: {self.error}")
        return self.confirmed

    def _opened(self, connection: Any) -> None:
        connection.channel(on_open_callback=self._channel)

    def _channel(self, channel: Any) -> None:
        self.channel = channel
        channel.confirm_delivery(ack_nack_callback=self._confirm, callback=self._start)

    def _start(self, _frame: object) -> None:
        self.started = time.perf_counter()
        self._pump()

    def _failed(self, _connection: object, error: object) -> None:
        self.error = error
        self.connection.ioloop.stop()

    def _closed(self, _connection: object, _reason: object) -> None:
        self.connection.ioloop.stop()

    def _confirm(self, frame: Any) -> None:
        method = frame.method
        if not isinstance(method, self.ack):
            self.error = f"message {method.delivery_tag} was nacked"
        self.confirmed = method.delivery_tag if method.multiple else self.confirmed + 1
        self._pump()

    def _pump(self) -> None:
        elapsed = time.perf_counter() - self.started
        if elapsed >= self.seconds or self.published >= self.total or self.error is not None:
            if self.confirmed == self.published and self.connection.is_open:
                self.connection.close()
            return
        allowed = min(self.due(elapsed), self.confirmed + self.window, self.total)
        while self.published < allowed:
            self.channel.basic_publish("", self.queue, self.value(), self.properties)
            self.published += 1
        if self.published < self.confirmed + self.window:  # paced: come back for the next ones
            self.connection.ioloop.call_later(0.001, self._pump)


class RabbitMQ(Target):
    reader = RabbitReader
    WINDOW_BYTES = 1 << 20  # unconfirmed messages in flight: 10,485 small or 64 large

    def prepare(self, stream: str) -> None:
        connection = _amqp(self.server.port)
        connection.channel().queue_declare(stream, durable=True)
        connection.close()

    def drop(self, stream: str) -> None:
        connection = _amqp(self.server.port)
        connection.channel().queue_delete(stream)
        connection.close()

    def produce(self, stream: str, size: int, records: int, seconds: float) -> int:
        value = bytes(size)
        return _RabbitPublisher(self.server.port, stream, max(1, self.WINDOW_BYTES // size),
                                lambda: value, lambda _elapsed: records, records).run(seconds)

    def send_paced(self, stream: str, rate: int, seconds: float) -> int:
        total = int(rate * seconds)
        return _RabbitPublisher(self.server.port, stream, total, lambda: stamped(VALUE),
                                lambda elapsed: int(elapsed * rate) + 1, total).run(seconds + 10)


# --- starting the servers -----------------------------------------------------------------------


@contextmanager
def minikafka_server(tmp: Path, flush: str) -> Iterator[Server]:
    port = free_port()
    data = tmp / f"minikafka-{flush}"
    argv = [sys.executable, "-m", "minikafka", "serve", "--data-dir", str(data), "--host",
            "127.0.0.1", "--port", str(port), "--flush", flush, "--log-level", "WARNING"]
    env = {"MINIKAFKA_UI": "false"}  # no web console
    with started("minikafka", argv, port, tmp / f"minikafka-{flush}.log", env) as server:
        yield server


@contextmanager
def redis_server(tmp: Path) -> Iterator[Server]:
    port = free_port()
    data = tmp / "redis"
    data.mkdir()
    argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data),
            "--save", "", "--appendonly", "yes", "--appendfsync", "no", "--daemonize", "no"]
    with started("redis-server", argv, port, tmp / "redis.log") as server:
        yield server


@contextmanager
def rabbitmq_server(tmp: Path) -> Iterator[Server]:
    """A throwaway node: its own epmd (stopped after), name, ports and directories."""
    base = tmp / "rabbitmq"
    base.mkdir()
    (base / "enabled_plugins").write_text("[].\n")
    epmd_port, amqp_port = free_port(), free_port()
    env = {
        "HOME": str(base),  # the Erlang cookie
        "ERL_EPMD_PORT": str(epmd_port), "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODENAME": f"bench{os.getpid()}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(amqp_port),
        "RABBITMQ_DIST_PORT": str(free_port()),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"), "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(base / "pid"), "RABBITMQ_LOGS": "-",
    }
    with (started("epmd", ["epmd"], epmd_port, tmp / "epmd.log", env),
          started("rabbitmq-server", [RABBITMQ_SERVER], amqp_port, tmp / "rabbitmq.log",
                  env) as server):
        yield server


RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # Debian's /usr/sbin one su's to a user


def installed(system: str) -> bool:
    if system == "redis":
        return shutil.which("redis-server") is not None
    if system == "rabbitmq":
        return os.path.exists(RABBITMQ_SERVER) and shutil.which("epmd") is not None
    return True


# --- the workloads ------------------------------------------------------------------------------


@dataclass
class Results:
    """Everything measured for one system (None: not measured)."""

    produce: Run | None = None
    produce_all: Run | None = None
    consume: Run | None = None
    latency: Latency | None = None
    large_produce: Run | None = None
    large_consume: Run | None = None


def produce_runs(target: Target, plan: Plan, size: int, prefix: str) -> list[tuple[str, Run]]:
    """`repeats` produce runs, each into a fresh stream: [(stream, run)]."""
    records = plan.records if size == VALUE else plan.large_bytes // size
    done = []
    for i in range(plan.repeats):
        stream = f"{prefix}-{i}"
        target.prepare(stream)
        done.append((stream, measure(target.server, size, lambda s=stream: target.produce(
            s, size, records, plan.seconds))))
    return done


def consume_runs(target: Target, plan: Plan, size: int, produced: list[tuple[str, Run]]
                 ) -> Run:
    """Read each produced stream from its start (connecting is not timed); the median run."""
    runs = []
    for stream, run in produced:
        reader = target.reader(target.address, stream)
        deadline = time.monotonic() + 2 * plan.seconds + 10
        runs.append(measure(target.server, size, lambda r=reader, n=run.records, d=deadline:
                            r.drain(n, d, _ignore)))
        reader.close()
        target.drop(stream)
    return median(runs)


def _ignore(_values: list[bytes]) -> None:
    """Throughput runs only count what arrives."""


def _latency_reader(reader: Callable[[str, str], Reader], address: str, stream: str,
                    expected: int, seconds: float, ready: Event, out: Connection) -> None:
    """The consuming side of the latency run, in its own process: each record's send time and
    end-to-end latency (ns)."""
    sent, latencies = array("q"), array("q")

    def sink(values: list[bytes]) -> None:
        now = time.perf_counter_ns()
        for value in values:
            stamp = STAMP.unpack_from(value)[0]
            sent.append(stamp)
            latencies.append(now - stamp)

    consumer = reader(address, stream)
    ready.set()
    consumer.drain(expected, time.monotonic() + seconds, sink)
    consumer.close()
    out.send_bytes(sent.tobytes())
    out.send_bytes(latencies.tobytes())


def latency_run(target: Target, plan: Plan) -> Latency:
    """Send at LATENCY_RATE for LATENCY_WARMUP + plan.latency_seconds; the records sent in the
    warm-up (connections, first fetches) are not counted."""
    stream = "latency"
    target.prepare(stream)
    seconds = LATENCY_WARMUP + plan.latency_seconds
    expected = int(LATENCY_RATE * seconds)
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Event()
    receive, send = spawn.Pipe(duplex=False)
    process = spawn.Process(target=_latency_reader, args=(
        target.reader, target.address, stream, expected, seconds + 20, ready, send))
    process.start()
    try:
        if not ready.wait(60):
            raise RuntimeError(f"{type(target).__name__}: the latency reader did not start")
        cpu_before, started_ns = target.server.cpu_seconds(), time.perf_counter_ns()
        sent = target.send_paced(stream, LATENCY_RATE, seconds)
        share = (target.server.cpu_seconds() - cpu_before) / (
            (time.perf_counter_ns() - started_ns) / 1e9)
        stamps, latencies = array("q"), array("q")
        stamps.frombytes(receive.recv_bytes())
        latencies.frombytes(receive.recv_bytes())
    finally:
        process.join(30)
        if process.is_alive():
            process.kill()
    target.drop(stream)
    counted_from = started_ns + int(LATENCY_WARMUP * 1e9)
    kept = array("q", (lat for stamp, lat in zip(stamps, latencies, strict=True)
                       if stamp >= counted_from))
    return Latency(sent - (len(latencies) - len(kept)), kept, share)  # sent after warm-up


def bench_target(target: Target, plan: Plan, results: Results) -> None:
    """Every workload but acks=all, for one running server."""
    produced = produce_runs(target, plan, VALUE, "small")
    results.produce = median([run for _stream, run in produced])
    results.consume = consume_runs(target, plan, VALUE, produced)
    results.latency = latency_run(target, plan)
    large = produce_runs(target, plan, LARGE_VALUE, "large")
    results.large_produce = median([run for _stream, run in large])
    results.large_consume = consume_runs(target, plan, LARGE_VALUE, large)


def produce_median(target: Target, plan: Plan, prefix: str) -> Run:
    produced = produce_runs(target, plan, VALUE, prefix)
    for stream, _run in produced:
        target.drop(stream)
    return median([run for _stream, run in produced])


def bench_minikafka(tmp: Path, plan: Plan) -> tuple[Results, Results]:
    """minikafka with confluent-kafka, and with kcat (acks=1 produce and consume only)."""
    results, kcat = Results(), Results()
    with minikafka_server(tmp, "never") as server:
        # The target's clients go with it: kept past the server, they log failed reconnects
        bench_target(MiniKafka(server), plan, results)
        if Kcat.available():
            address = f"127.0.0.1:{server.port}"
            source = tmp / "kcat-input"
            source.write_bytes((b"x" * (VALUE - 1) + b"\n") * plan.records)
            streams = [f"kcat-{i}" for i in range(plan.repeats)]
            kcat.produce = median([measure(server, VALUE, lambda s=s: Kcat.produce(
                address, s, source, plan.records)) for s in streams])
            kcat.consume = median([measure(server, VALUE, lambda s=s: Kcat.consume(
                address, s)) for s in streams])
            source.unlink()
    with minikafka_server(tmp, "always") as server:
        results.produce_all = produce_median(MiniKafka(server, acks="all"), plan, "all")
    return results, kcat


def bench_redis(tmp: Path, plan: Plan) -> Results:
    results = Results()
    with redis_server(tmp) as server:
        redis = Redis(server)
        redis.fsync(always=True)
        results.produce_all = produce_median(redis, plan, "all")
        redis.fsync(always=False)
        bench_target(redis, plan, results)
    return results


def bench_rabbitmq(tmp: Path, plan: Plan) -> Results:
    """Persistent messages with confirms are RabbitMQ's only acknowledged-when-stored mode, so
    one figure stands beside both acks=1 and acks=all."""
    results = Results()
    with rabbitmq_server(tmp) as server:
        bench_target(RabbitMQ(server), plan, results)
    results.produce_all = results.produce
    return results


# --- reporting ----------------------------------------------------------------------------------

LABELS = {"minikafka": "minikafka", "kcat": "minikafka (kcat)", "redis": "Redis Streams",
          "rabbitmq": "RabbitMQ"}
CLIENTS = ("clients: minikafka confluent-kafka, or kcat (librdkafka in C); Redis redis-py + "
           "hiredis; RabbitMQ pika. CPU: % of one core (the machine has 2). mk ÷: minikafka's "
           "figure divided by this row's.")
GOALS = (  # issue 3, on this 2-core machine; a negative target is an upper bound
    ("produce acks=1, records/s", 1_000_000, lambda r: r.produce and r.produce.rate),
    ("consume, records/s", 1_500_000, lambda r: r.consume and r.consume.rate),
    ("latency p99 at 10 k/s, ms (at most)", -5.0,
     lambda r: r.latency and r.latency.percentile(0.99)),
    ("fetch MB/s, 1 MiB batches", 1_000, lambda r: r.large_consume and r.large_consume.mb_s),
)


def _num(value: float) -> str:
    return f"{value:,.0f}"


def _pct(share: float) -> str:
    return f"{share:.0%}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    return "" if not ours or not theirs else f"{ours / theirs:,.2f}x"


def _table(title: str, columns: tuple[str, ...]) -> Table:
    table = Table(title=title, title_justify="left", caption=CLIENTS, caption_justify="left")
    table.add_column("system")
    for column in columns:
        table.add_column(column, justify="right")
    return table


def throughput_table(title: str, results: dict[str, Results], field: str) -> Table:
    table = _table(title, ("records/s", "MB/s", "server CPU", "server µs/rec", "client CPU",
                           "mk ÷"))
    ours = getattr(results["minikafka"], field)
    for system, result in results.items():
        run: Run | None = getattr(result, field)
        if run is None:
            continue
        table.add_row(LABELS[system], _num(run.rate), f"{run.mb_s:,.1f}", _pct(run.server_share),
                      f"{run.server_cpu / max(run.records, 1) * 1e6:,.2f}",
                      _pct(run.client_share), _ratio(ours and ours.rate, run.rate))
    return table


def latency_table(results: dict[str, Results]) -> Table:
    table = _table(f"end-to-end latency (ms) at {LATENCY_RATE:,} records/s of 100 bytes: one "
                   "producer without batching, the consumer in another process",
                   ("p50", "p99", "p99.9", "max", "received", "server CPU", "mk ÷ (p99)"))
    ours = results["minikafka"].latency
    for system, result in results.items():
        lat = result.latency
        if lat is None:
            continue
        table.add_row(LABELS[system], *(f"{lat.percentile(p):.2f}" for p in (0.5, 0.99, 0.999)),
                      f"{max(lat.received_ns, default=0) / 1e6:.2f}",
                      _pct(len(lat.received_ns) / max(lat.sent, 1)), _pct(lat.server_share),
                      _ratio(ours and ours.percentile(0.99), lat.percentile(0.99)))
    return table


def large_table(results: dict[str, Results]) -> Table:
    table = _table(f"{LARGE_VALUE // 1024} KiB records in 1 MiB batches (producer batches, "
                   "pipelines or confirm windows)",
                   ("produce MB/s", "server CPU", "consume MB/s", "server CPU", "mk ÷"))
    ours = results["minikafka"]
    for system, result in results.items():
        up, down = result.large_produce, result.large_consume
        if up is None or down is None:
            continue
        table.add_row(LABELS[system], _num(up.mb_s), _pct(up.server_share), _num(down.mb_s),
                      _pct(down.server_share),
                      f"{_ratio(ours.large_produce and ours.large_produce.mb_s, up.mb_s)} / "
                      f"{_ratio(ours.large_consume and ours.large_consume.mb_s, down.mb_s)}")
    return table


def goals_table(results: dict[str, Results]) -> Table:
    table = Table(title="issue 3 goals (minikafka · confluent-kafka; kcat where it differs)",
                  title_justify="left")
    for column in ("goal", "target", "measured", "kcat", "met"):
        table.add_column(column, justify="left" if column == "goal" else "right")
    for name, target, read in GOALS:
        value, kcat = read(results["minikafka"]), read(results.get("kcat", Results()))
        met = value is not None and (value <= -target if target < 0 else value >= target)
        table.add_row(name, _num(abs(target)) if target > 0 else f"{-target:g}",
                      "" if value is None else f"{value:,.2f}" if target < 0 else _num(value),
                      "" if not kcat else _num(kcat), "yes" if met else "no")
    return table


def pull_versus_push(results: dict[str, Results]) -> str:
    """The course's contrast, told with this run's figures."""
    ours, rabbit = results["minikafka"].consume, results.get("rabbitmq", Results()).consume
    if ours is None or rabbit is None:
        return ""

    def per_record(run: Run) -> str:
        return f"{run.server_cpu / max(run.records, 1) * 1e6:.2f} µs"

    return (
        "Pull from a retained log vs push from a queue. A Kafka consumer asks for a byte range "
        "of a partition's log; the broker answers with a file slice that goes to the socket by "
        f"sendfile, so reading cost minikafka {per_record(ours)} of CPU per record "
        f"({_num(ours.rate)} records/s with the broker at {_pct(ours.server_share)} of a core), "
        "and reading leaves the log as it was: any number of consumer groups can read it again, "
        "each from its own offset at its own pace, at that cost, without the producer knowing. "
        "RabbitMQ pushes each message to a consumer within a prefetch window, "
        "tracks it until acknowledged, then deletes it: "
        f"{per_record(rabbit)} of broker CPU per message ({_num(rabbit.rate)} messages/s, "
        f"{_pct(rabbit.server_share)} of a core), every message handled one by one, and once "
        "consumed it is gone: a second reader needs its own queue, bound before the publish, "
        "holding its own copy. Push gives per-message routing, acknowledgement and redelivery "
        "without consumer bookkeeping; pull puts the position in the consumer's hands (replay, "
        "rewinding, batching that grows with the backlog), which is what makes the log cheap "
        "to read many times."
    )


def record_goals(results: dict[str, Results]) -> None:
    """Issue 16's goals that this section measures, for the summary at the end."""
    ours, redis = results["minikafka"], results.get("redis", Results())
    latency, produce, consume = ours.latency, ours.produce, ours.consume
    p99 = latency and latency.percentile(0.99)
    record("broker CPU at 10,000 unbatched records/s", latency and latency.server_share * 100,
           25, at_most=True, unit="% of a core")
    record("end-to-end p99 at 10,000 records/s", p99, 5, at_most=True, unit="ms")
    record("that p99 ÷ Redis Streams' p99", p99 / redis.latency.percentile(0.99)
           if p99 and redis.latency else None, 1, at_most=True, unit="x")
    for name, run, target in (("produce", produce, 1_000_000), ("consume", consume, 1_500_000)):
        record(f"{name} with confluent-kafka", run and run.rate, target, unit="records/s")
        if run and run.rate < target:  # then the goal is that the client is the limit
            record(f"{name}: broker CPU ÷ client CPU per record (the client the limit)",
                   run.server_cpu / run.client_cpu if run.client_cpu else None, 0.2,
                   at_most=True, unit="x")


def report(results: dict[str, Results]) -> list[Table]:
    record_goals(results)
    tables = [
        throughput_table("produce, 100-byte records, acks=1 (minikafka flush 'never'; Redis "
                         "appendfsync no; RabbitMQ persistent + confirms)", results, "produce"),
        throughput_table("produce, 100-byte records, acks=all (minikafka flush 'always', "
                         "group commit; Redis appendfsync always; RabbitMQ persistent + "
                         "confirms)", results, "produce_all"),
        throughput_table("consume, 100-byte records, from the start of what was produced",
                         results, "consume"),
        latency_table(results),
        large_table(results),
        goals_table(results),
    ]
    paragraph = pull_versus_push(results)
    if paragraph:
        note = Table(title="pull vs push", title_justify="left", show_header=False)
        note.add_column()
        note.add_row(paragraph)
        tables.append(note)
    return tables


def run(plan: Plan | None = None) -> list[Table]:
    plan = plan or current_plan()
    tmp = Path(tempfile.mkdtemp(prefix="minikafka-bench-broker-"))
    results: dict[str, Results] = {}
    try:
        results["minikafka"], kcat = bench_minikafka(tmp, plan)
        if kcat.produce is not None:
            results["kcat"] = kcat
        for system, bench in (("redis", bench_redis), ("rabbitmq", bench_rabbitmq)):
            if installed(system):
                results[system] = bench(tmp, plan)
            else:
                print(f"bench.broker: {system} is not installed (make apt-bench); skipped",
                      file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report(results)


if __name__ == "__main__":
    if "--quick" in sys.argv[1:]:
        os.environ["BENCH_QUICK"] = "1"
    console = Console()
    for table in run():
        console.print(table)
