"""A real broker on a free port (see brokerkit), and helpers to talk raw protocol."""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Iterator

import pytest
from kafka.protocol.admin import CreateTopicsRequest

from brokerkit import (
    BrokerProcess,
    InProcessBroker,
    broker,
    broker_process,
    own_broker,
)

__all__ = ["BrokerProcess", "InProcessBroker", "broker", "broker_process",
           "own_broker"]  # tests import them here


@pytest.fixture(scope="session")
def broker_args() -> tuple[str, ...]:
    """No initial rebalance delay: groups here are joined one consumer at a time, and waiting
    Kafka's 3 s for more members to come tests nothing."""
    return ("--group-initial-rebalance-delay-ms", "0")


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A topic name unique to this test."""
    name = f"{request.node.module.__name__.rsplit('.', 1)[-1]}.{request.node.name}"
    return re.sub(r"[^a-zA-Z0-9._-]", "-", name)[:200]


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> str:
    """Create `name` (Produce creates no topic, as in Kafka); returns it."""
    cls = CreateTopicsRequest[7]
    client = RawClient(bootstrap)
    try:
        response = client.request(cls(topics=[cls.CreatableTopic(
            name=name, num_partitions=partitions, replication_factor=1, assignments=[],
            configs=[])], timeout_ms=30_000, validate_only=False))
    finally:
        client.close()
    assert response.topics[0].error_code == 0, response  # type: ignore[attr-defined]
    return name


@pytest.fixture
def raw(broker: InProcessBroker) -> Iterator[RawClient]:
    """A raw connection to the shared broker."""
    client = RawClient(broker.bootstrap)
    yield client
    client.close()


# --- raw protocol --------------------------------------------------------------------------------


class RawClient:
    """A bare socket speaking frames, for the bad-input tests."""

    def __init__(self, bootstrap: str) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=5)

    def send(self, payload: bytes) -> None:
        self.sock.sendall(payload)

    def send_frame(self, body: bytes) -> None:
        self.send(struct.pack(">i", len(body)) + body)

    def request(self, request: object, correlation_id: int = 1) -> object:
        """Send a kafka-python request object; return the decoded response."""
        request.with_header(correlation_id=correlation_id, client_id="raw")  # type: ignore[attr-defined]
        self.send(request.encode(header=True, framed=True))  # type: ignore[attr-defined]
        frame = self.read_frame()
        assert frame is not None, "connection closed instead of answering"
        cls = request.header.get_response_class()  # type: ignore[attr-defined]
        return cls.decode(frame, header=True)

    def read_frame(self) -> bytes | None:
        head = self._read(4)
        if head is None:
            return None
        body = self._read(struct.unpack(">i", head)[0])
        return body

    def _read(self, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def is_closed(self) -> bool:
        """True once the broker has closed this connection."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()
