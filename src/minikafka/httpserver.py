"""An ASGI app served by uvicorn inside the broker's event loop: the web console and the schema
registry each run one, started and stopped by `minikafka serve`, never by a signal."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any, Self

import uvicorn

SHUTDOWN_GRACE_SECONDS = 3  # uvicorn takes whole seconds


class _InLoopServer(uvicorn.Server):
    """uvicorn without its signal handlers: the broker owns SIGINT/SIGTERM and stops us."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AppServer:
    """A running app: its address, and how to stop it."""

    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None], url: str) -> None:
        self._server = server
        self._task = task
        self.url = url

    @classmethod
    async def serve(cls, app: Any, host: str, port: int, advertised: str, what: str,
                    hint: str) -> Self:
        """Bind the port before anything runs, so that a taken port is a clear OSError at start
        (naming `what`, and `hint` to get round it) rather than a log line from a background
        task."""
        try:
            sock = socket.create_server((host, port))
            # Accepted sockets inherit it. asyncio sets it only on sockets made with
            # proto=IPPROTO_TCP, and create_server's have 0: without it each answer's body
            # waited for the client's delayed ACK (~40 ms a request on a kept-alive connection).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            raise OSError(exc.errno, f"{what} cannot listen on {host}:{port}: "
                          f"{exc.strerror} ({hint})") from None
        config = uvicorn.Config(app, lifespan="off", http="h11", ws="none",
                                log_config=None, log_level="warning", access_log=False,
                                server_header=False,
                                timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS)
        server = _InLoopServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        return cls(server, task, f"http://{advertised}:{sock.getsockname()[1]}/")

    async def stop(self) -> None:
        """Stop accepting and let running requests finish."""
        self._server.should_exit = True
        await self._task
