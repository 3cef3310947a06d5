"""uvicorn inside the broker: started and stopped by the broker, never by a signal."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from ..broker.context import BrokerContext
from .app import create_app

SHUTDOWN_GRACE_SECONDS = 3  # uvicorn takes whole seconds


class _InLoopServer(uvicorn.Server):
    """uvicorn without its signal handlers: the broker owns SIGINT/SIGTERM and stops us."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Console:
    """The running console: its address, and how to stop it."""

    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None], url: str) -> None:
        self._server = server
        self._task = task
        self.url = url

    @classmethod
    async def start(cls, ctx: BrokerContext) -> Console:
        """Bind the port before anything runs, so that a taken port is a clear OSError at
        start rather than a log line from a background task."""
        host, port = ctx.config.host, ctx.config.ui_port
        try:
            sock = socket.create_server((host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"web console cannot listen on {host}:{port}: "
                          f"{exc.strerror} (pick another with --ui-port, 0 for a free one)"
                          ) from None
        config = uvicorn.Config(create_app(ctx), lifespan="off", http="h11", ws="none",
                                log_config=None, log_level="warning", access_log=False,
                                server_header=False,
                                timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS)
        server = _InLoopServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        advertised, _ = ctx.config.advertised
        return cls(server, task, f"http://{advertised}:{sock.getsockname()[1]}/")

    async def stop(self) -> None:
        """Stop accepting and let running requests finish (live streams end once the broker
        is stopping)."""
        self._server.should_exit = True
        await self._task
