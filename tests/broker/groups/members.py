"""A confluent-kafka group member in a process of its own (so that a test can SIGKILL it), and
the test's handle on it, fed by the JSON lines the member prints: what it owns, what it consumed
and what it committed, each stamped with the machine's monotonic clock.

The member commits what it consumed after every batch, synchronously, and says so only once the
commit succeeded: whatever it reports committed must never be delivered again, to anyone.
"""

from __future__ import annotations

import argparse
import bisect
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

DEFAULT_SESSION_TIMEOUT_MS = 3000


# --- the member (child process) ------------------------------------------------------------------


def _emit(**event: Any) -> None:
    print(json.dumps({**event, "t": time.monotonic()}), flush=True)


def run_member(args: argparse.Namespace) -> None:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    config = {"bootstrap.servers": args.bootstrap, "group.id": args.group,
              "client.id": args.client_id, "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "partition.assignment.strategy": args.assignor,
              "session.timeout.ms": args.session_timeout_ms,
              "heartbeat.interval.ms": args.session_timeout_ms // 10,
              "max.poll.interval.ms": 10_000, "fetch.wait.max.ms": 50}
    if args.instance_id:
        config["group.instance.id"] = args.instance_id
    consumer = Consumer(config)

    def changed(kind: str) -> Callable[[Any, list[Any]], None]:
        return lambda _consumer, parts: _emit(ev=kind, parts=[p.partition for p in parts])

    consumer.subscribe([args.topic], on_assign=changed("assign"), on_revoke=changed("revoke"),
                       on_lost=changed("revoke"))
    while not stopping.is_set():
        records = [(m.partition(), m.offset()) for m in consumer.consume(500, timeout=0.1)
                   if m.error() is None]
        if not records:
            continue
        _emit(ev="consumed", records=records)
        positions = {p: o + 1 for p, o in records}
        try:
            done = consumer.commit(offsets=[TopicPartition(args.topic, p, o)
                                            for p, o in positions.items()], asynchronous=False)
        except KafkaException as exc:  # e.g. a rebalance took the partitions meanwhile
            _emit(ev="commit_failed", error=str(exc))
            continue
        _emit(ev="committed", offsets=[(tp.partition, tp.offset) for tp in done or ()
                                       if tp.error is None])
    consumer.close()
    _emit(ev="closed")


# --- the test's handle ---------------------------------------------------------------------------


class MemberProcess:
    """Starts a member; tracks its events from a reader thread."""

    def __init__(self, bootstrap: str, topic: str, group: str, *, assignor: str = "range",
                 instance_id: str | None = None, client_id: str = "member",
                 session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS) -> None:
        argv = [sys.executable, __file__, bootstrap, topic, group, "--assignor", assignor,
                "--client-id", client_id, "--session-timeout-ms", str(session_timeout_ms)]
        if instance_id:
            argv += ["--instance-id", instance_id]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self._lock = threading.Lock()
        self.owned: set[int] = set()
        self.consumed: list[tuple[int, int, float]] = []  # partition, offset, when
        self.commits: list[tuple[int, int, float]] = []  # partition, committed offset, when
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            with self._lock:
                self.events.append(event)
                kind, when = event["ev"], event["t"]
                if kind == "assign":
                    self.owned |= set(event["parts"])
                elif kind == "revoke":
                    self.owned -= set(event["parts"])
                elif kind == "consumed":
                    self.consumed += [(p, o, when) for p, o in event["records"]]
                elif kind == "committed":
                    self.commits += [(p, o, when) for p, o in event["offsets"]]

    def snapshot(self) -> tuple[frozenset[int], int]:
        """(partitions owned, how many assign/revoke events so far)."""
        with self._lock:
            changes = sum(e["ev"] in ("assign", "revoke") for e in self.events)
            return frozenset(self.owned), changes

    def kill(self) -> None:
        """SIGKILL: no LeaveGroup, no final commit; it owns nothing from now on."""
        self.proc.kill()
        self.proc.wait(10)
        self._reader.join(10)
        with self._lock:
            self.owned = set()

    def stop(self) -> None:
        """SIGTERM: the member closes its consumer (a dynamic member leaves the group)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})  # alive until the result is in
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(15)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `condition` until true; return the seconds it took."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"timed out after {timeout} s: {what}"
        time.sleep(0.05)
    return time.monotonic() - started


def partitions_split(members: Iterable[MemberProcess], partitions: int) -> bool:
    """Every partition owned by exactly one member, and every member owning some."""
    owned = [m.snapshot()[0] for m in members]
    return (all(owned) and sum(map(len, owned)) == partitions
            and frozenset().union(*owned) == frozenset(range(partitions)))


def assert_committed_never_redelivered(members: Iterable[MemberProcess]) -> None:
    """No record is delivered after a commit past it was acknowledged (to any member)."""
    members = list(members)
    timeline: dict[int, tuple[list[float], list[int]]] = {}  # partition -> times, max so far
    for partition, offset, when in sorted((c for m in members for c in m.commits),
                                          key=lambda c: c[2]):
        times, highest = timeline.setdefault(partition, ([], []))
        times.append(when)
        highest.append(max(offset, highest[-1] if highest else 0))
    for member in members:
        for partition, offset, when in member.consumed:
            times, highest = timeline.get(partition, ([], []))
            before = bisect.bisect_left(times, when)
            committed = highest[before - 1] if before else 0
            assert offset >= committed, (
                f"partition {partition} offset {offset} delivered again after offset "
                f"{committed} was committed")


def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("bootstrap", "topic", "group"):
        parser.add_argument(name)
    parser.add_argument("--assignor", default="range")
    parser.add_argument("--client-id", default="member")
    parser.add_argument("--instance-id")
    parser.add_argument("--session-timeout-ms", type=int, default=DEFAULT_SESSION_TIMEOUT_MS)
    run_member(parser.parse_args())


if __name__ == "__main__":
    main()
