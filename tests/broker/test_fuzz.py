"""The fuzzing campaign (issue 11): mutated frames of every served API and version, and of real
clients' traffic (tests/protocol/fuzz.py), sent to a broker process, which must keep serving.

After every chunk of frames: the broker is alive, its RSS and descriptors stay bounded, a canary
record produced at the start is still readable, another client's round trips stay quick, the
data directory stays small, and the broker's log holds no traceback (a warning per bad frame is
expected). A failure names the seed and the frame, in hex. `make test` sends a few thousand
frames; `make soak` 200,000 times MINIKAFKA_SOAK_FACTOR (default 1).

The broker runs with low max.topics and max.partitions: fuzzed CreateTopics and
CreatePartitions can only make a few empty directories.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kafka.protocol.admin import CreateTopicsRequest
from kafka.protocol.metadata import ApiVersionsRequest, MetadataRequest

from minikafka.records import Record, decode_batches, encode_batch
from protocol.fuzz import frames, read_corpus, served_seeds

from .conftest import BrokerProcess, RawClient
from .test_bad_input import partition_error, produce_request
from .test_semantics import fetch

CANARY = "canary-7f3a"  # no seed names it: only a mutation of a seed would
CHUNK = 500  # frames between checks
FRAMES_PER_CONNECTION = 50  # then it is closed: what the broker held for it must go
ANSWER_WAIT = 0.02  # seconds to wait for an answer (or a close) before the next frame
MAX_ROUND_TRIP = 0.5  # seconds, another client's ApiVersions or Metadata
MAX_RSS_GROWTH = 150 << 20
MAX_FD_GROWTH = 64
MAX_DATA_BYTES = 64 << 20
MAX_DATA_ENTRIES = 2000
BROKER_ARGS = ("--no-ui", "--max-topics", "10", "--max-partitions", "40",
               "--group-initial-rebalance-delay-ms", "0", "--group-min-session-timeout-ms", "10")


@pytest.fixture
def fuzzed(tmp_path: Path) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(tmp_path / "data", *BROKER_ARGS).start()
    yield proc
    proc.stop()


def test_fuzz(fuzzed: BrokerProcess) -> None:
    campaign(fuzzed, frame_count=5000, seed=int(os.environ.get("MINIKAFKA_FUZZ_SEED", "1")))


@pytest.mark.soak
def test_fuzz_soak(fuzzed: BrokerProcess) -> None:
    frame_count = 200_000 * int(os.environ.get("MINIKAFKA_SOAK_FACTOR", "1"))
    campaign(fuzzed, frame_count, seed=int(os.environ.get("MINIKAFKA_FUZZ_SEED",
                                                          str(time.time_ns() % 1_000_000))))


def campaign(broker: BrokerProcess, frame_count: int, seed: int) -> None:
    print(f"fuzzing with seed {seed} (MINIKAFKA_FUZZ_SEED={seed} replays it)")
    watch = Watch(broker)
    served = watch.served()
    seeds = served_seeds(served) + read_corpus()
    sender = Sender(broker.bootstrap)
    sent = 0
    try:
        for chunk in range(0, frame_count, CHUNK):
            chunk_seed = seed * 1_000_003 + chunk
            batch = list(frames(chunk_seed, min(CHUNK, frame_count - chunk), seeds, served))
            for frame in batch:
                sender.send(frame)
            sent += len(batch)
            sender.close()
            watch.check(f"after {sent} frames (chunk seed {chunk_seed})", batch)
    finally:
        sender.close()
        print(f"{sent} frames: max RSS {watch.max_rss >> 20} MiB, max fds {watch.max_fds}, "
              f"max round trip {watch.max_round_trip * 1000:.1f} ms")


class Sender:
    """Sends frames over connections it opens and closes as it goes; reads and drops answers.
    It never waits long for one: a fuzzed long poll may be told to wait for days."""

    def __init__(self, bootstrap: str) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.address = (host, int(port))
        self.sock: socket.socket | None = None
        self.sent = 0

    def send(self, frame: bytes) -> None:
        if self.sock is None or self.sent >= FRAMES_PER_CONNECTION:
            self.close()
            self.sock = socket.create_connection(self.address, timeout=1)
        self.sent += 1
        try:
            self.sock.sendall(struct.pack(">i", len(frame)) + frame)
            wait = ANSWER_WAIT
            while select.select([self.sock], [], [], wait)[0]:
                if not self.sock.recv(1 << 16):
                    self.close()  # the broker closed it: a malformed frame
                    return
                wait = 0  # an answer came: take what else is there, then go on
        except OSError:  # reset, or the broker stopped reading (a pipelined long poll)
            self.close()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.sent = None, 0


@dataclass
class Watch:
    """What must hold after every chunk, measured from outside the broker process."""

    broker: BrokerProcess
    max_rss: int = 0
    max_fds: int = 0
    max_round_trip: float = 0.0
    _log_at: int = 0
    _base: tuple[int, int] = (0, 0)
    _client: RawClient = field(init=False)

    def __post_init__(self) -> None:
        self._client = RawClient(self.broker.bootstrap)
        cls = CreateTopicsRequest[7]
        created = self._client.request(cls(topics=[cls.CreatableTopic(
            name=CANARY, num_partitions=1, replication_factor=1, assignments=[], configs=[])],
            timeout_ms=10_000, validate_only=False))
        assert created.topics[0].error_code == 0, created  # type: ignore[attr-defined]
        produced = self._client.request(produce_request(CANARY, encode_batch(
            [Record(b"canary")]), acks=-1))
        assert partition_error(produced) == 0, produced
        self._base = (self._rss(), self._fds())

    def served(self) -> dict[int, tuple[int, int]]:
        response = self._client.request(ApiVersionsRequest[3](
            client_software_name="fuzz", client_software_version="1"))
        return {k.api_key: (k.min_version, k.max_version)
                for k in response.api_keys}  # type: ignore[attr-defined]

    def check(self, when: str, batch: list[bytes]) -> None:
        assert self.broker.running, f"broker died {when}\n{self.broker.log()[-5000:]}"
        self._check_log(when, batch)
        self._check_round_trips(when)
        part = fetch(self._client, CANARY, 0)
        values = [r.value for b in decode_batches(part.records)  # type: ignore[attr-defined]
                  for r in b.records]
        assert values[:1] == [b"canary"], f"canary record lost {when}: {part}"
        rss, fds = self._rss(), self._fds()
        self.max_rss, self.max_fds = max(self.max_rss, rss), max(self.max_fds, fds)
        assert rss < self._base[0] + MAX_RSS_GROWTH, f"RSS {rss >> 20} MiB {when}"
        assert fds < self._base[1] + MAX_FD_GROWTH, f"{fds} descriptors open {when}"
        entries = list(self.broker.data_dir.rglob("*"))
        used = sum(p.stat().st_blocks * 512 for p in entries if p.is_file())
        assert len(entries) < MAX_DATA_ENTRIES and used < MAX_DATA_BYTES, (
            f"data directory holds {len(entries)} entries, {used} bytes {when}")

    def _check_round_trips(self, when: str) -> None:
        for request in (ApiVersionsRequest[0](), MetadataRequest[1](topics=[CANARY])):
            started = time.perf_counter()
            self._client.request(request)
            took = time.perf_counter() - started
            self.max_round_trip = max(self.max_round_trip, took)
            assert took < MAX_ROUND_TRIP, f"{type(request).__name__} took {took:.3f} s {when}"

    def _check_log(self, when: str, batch: list[bytes]) -> None:
        """No traceback or error in the broker's log since the last check; if there is one,
        the frame of `batch` that causes it is found by sending them again one at a time."""
        if not _broken(self._new_log()):
            return
        for frame in batch:
            sender = Sender(self.broker.bootstrap)
            sender.send(frame)
            sender.close()
            time.sleep(0.05)
            text = self._new_log()
            if _broken(text):
                pytest.fail(f"traceback {when}, frame {frame.hex()}\n{text[-5000:]}")
        pytest.fail(f"traceback {when}, not found again frame by frame\n"
                    f"{self.broker.log()[-5000:]}")

    def _new_log(self) -> str:
        with open(self.broker.log_path, "rb") as log:
            log.seek(self._log_at)
            text = log.read()
        self._log_at += len(text)
        return text.decode(errors="replace")

    def _rss(self) -> int:
        with open(f"/proc/{self.broker.proc.pid}/status") as status:
            line = next(line for line in status if line.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024

    def _fds(self) -> int:
        return len(os.listdir(f"/proc/{self.broker.proc.pid}/fd"))


def _broken(log: str) -> bool:
    """A traceback or an error in the broker's log: a bad frame only ever earns a warning."""
    return "Traceback" in log or " ERROR " in log or " CRITICAL " in log
