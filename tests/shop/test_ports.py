"""The ports handed to children and to test brokers: free now, and not ones the kernel is about
to give anyone else."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from minikafka.shop.ports import choose_port, free_port, is_free

RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


@pytest.mark.skipif(not RANGE.exists(), reason="Linux's ephemeral port range")
def test_a_free_port_is_outside_the_ephemeral_range() -> None:
    """A port from the ephemeral range can be taken, between choosing it and binding it, by any
    outgoing connection or port-0 bind on the machine (a CI run lost a TLS test to that)."""
    low, high = map(int, RANGE.read_text().split())
    ports = {free_port() for _ in range(20)}
    assert all(not low <= port <= high and is_free(port) for port in ports), (ports, low, high)
    assert len(ports) > 1  # chosen at random, so that parallel choosers rarely meet


def test_a_busy_default_moves_and_a_busy_request_is_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as held:
        busy = held.getsockname()[1]
        port, note = choose_port(None, busy, "--port", "the broker")
        assert port != busy and is_free(port)
        assert note == f"port {busy} is busy, so the broker uses {port} (pin one with --port)"
        with pytest.raises(ValueError, match=f"port {busy} is busy: choose another with --port"):
            choose_port(busy, 9092, "--port", "the broker")
