"""The ports the demo's processes listen on: a default that moves when it is busy, a pinned one
that does not.

A port left to its default (the broker's 9092, the API's 8000, the console's 8080) that someone
else holds is replaced by a free one, and the demo says which and how to pin it. A port the user
asked for (a flag or its environment variable) is never changed: a busy one is a one-line error
naming the flag. Either way nothing starts half-way and dies with a traceback.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

HOST = "127.0.0.1"  # where the demo's processes listen
LOWEST = 15000  # below it are the well-known defaults (8000, 8080, 9092, ...)
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    """A TCP port nobody listens on right now (for a child that must be told its port).

    It is picked at random below the kernel's ephemeral range: a port from that range (what a
    port-0 bind returns) can go to any outgoing connection or port-0 bind before the child binds
    it."""
    first = _ephemeral_start()
    for _ in range(100):
        if first <= LOWEST:
            break
        port = random.randrange(LOWEST, first)
        if is_free(port):
            return port
    with socket.socket() as sock:  # no room below the range: the kernel's choice
        sock.bind((HOST, 0))
        chosen: int = sock.getsockname()[1]
        return chosen


def _ephemeral_start() -> int:
    """The first port of the kernel's ephemeral range (IANA's 49152 where it cannot be read)."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152


def is_free(port: int) -> bool:
    """Whether a server could listen on `port` now (as the children do: no SO_REUSEPORT)."""
    try:
        with socket.create_server((HOST, port)):
            return True
    except OSError:
        return False


def choose_port(requested: int | None, default: int, flag: str, what: str
                ) -> tuple[int, str | None]:
    """The port to use (0: the process picks one) and a note for the user when the default
    was busy. `requested` is None when the user left it to the default."""
    if requested is not None:
        if requested and not is_free(requested):
            raise ValueError(f"port {requested} is busy: choose another with {flag} "
                             "(0 picks a free one)")
        return requested, None
    if is_free(default):
        return default, None
    port = free_port()
    return port, f"port {default} is busy, so {what} uses {port} (pin one with {flag})"
