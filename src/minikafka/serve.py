"""`minikafka serve`: one process running the broker and, unless `--no-ui`, its web console,
and unless `--no-schema-registry`, its schema registry.

The broker knows nothing of the console or the registry; they read the broker's context. This
module is the one place that puts them together, so no package imports another's start-up.
A console or registry that cannot start (its port is taken) is one warning line: the broker
serves on. On SIGINT/SIGTERM the console and the registry stop, then the broker (answers what it
has read, flushes the log) and the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

from .broker.config import BrokerConfig
from .broker.server import Broker
from .compiled import stale
from .errors import KafkaError
from .heap import freeze_start_up

if TYPE_CHECKING:
    from .console.server import Console
    from .httpserver import AppServer
    from .registry.service import Registry

log = logging.getLogger("minikafka.broker")
T = TypeVar("T")


class Server:
    """A started broker, its console and its registry: `await start()`, then `await stop()`."""

    def __init__(self, config: BrokerConfig) -> None:
        self.broker = Broker(config)
        self.console: Console | None = None  # the web console and /metrics (config.ui)
        self.registry: AppServer | None = None  # the schema registry (config.schema_registry)
        self.schemas: Registry | None = None  # its state, served by it and shown by the console

    async def start(self) -> None:
        await self.broker.start()
        ctx = self.broker.ctx
        assert ctx is not None
        if self.broker.config.schema_registry:
            from .registry import open_registry  # the registry's modules load only with it

            self.schemas = open_registry(ctx)
        if self.broker.config.ui:
            from .console import start_console  # FastAPI and uvicorn load only with it

            self.console = await _beside(start_console(ctx, self.schemas))
        if self.schemas is not None:
            from .registry import start_registry

            self.registry = await _beside(start_registry(ctx, self.schemas))

    async def stop(self) -> None:
        for app in (self.registry, self.console):
            if app is not None:
                await app.stop()
        await self.broker.stop()


async def _beside(starting: Awaitable[T]) -> T | None:
    """Start an app beside the broker; one that cannot (its port is taken) is a warning."""
    try:
        return await starting
    except OSError as exc:  # a convenience: the broker serves on without it
        log.warning("%s; the broker runs without it", exc.strerror or exc)
        return None


async def run(config: BrokerConfig) -> None:
    """Serve until SIGINT or SIGTERM."""
    server = Server(config)
    await server.start()
    freeze_start_up()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    broker = server.broker
    bound = broker.config.bind_listeners
    where = (f"{bound[0].host}:{bound[0].port}" if broker.config.listeners is None
             else ", ".join(map(str, bound)))
    print(f"minikafka broker listening on {where}; "
          f"clients use bootstrap servers {broker.address} (data in {config.data_dir})",
          flush=True)
    if server.console is not None:
        print(f"minikafka console at {server.console.url} "
              f"(Prometheus metrics at {server.console.url}metrics)", flush=True)
    if server.registry is not None:
        print(f"minikafka schema registry at {server.registry.url}", flush=True)
    await stop.wait()
    log.info("shutting down")
    await server.stop()


def serve(config: BrokerConfig) -> int:
    """Run a broker in this process (the CLI's `minikafka serve`); returns the exit status."""
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for source in stale():
        log.warning("%s changed since the compiled modules were built: they run what it was "
                    "(reinstall: make, or delete the .so files in the package)", source)
    try:
        asyncio.run(run(config))
    except (KafkaError, OSError, ValueError) as exc:  # startup: port taken, dir locked, ...
        print(f"minikafka serve: {exc}", file=sys.stderr)
        return 1
    return 0
