"""`minikafka serve`: one process running the broker and, unless `--no-ui`, its web console.

The broker knows nothing of the console; the console reads the broker's context. This module is
the one place that puts them together, so neither package imports the other's start-up.
A console that cannot start (its port is taken) is one warning line: the broker serves on.
On SIGINT/SIGTERM the console stops, then the broker (answers what it has read, flushes the log)
and the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING

from .broker.config import BrokerConfig
from .broker.server import Broker
from .errors import KafkaError

if TYPE_CHECKING:
    from .console.server import Console

log = logging.getLogger("minikafka.broker")


class Server:
    """A started broker and its console: `await start()`, then `await stop()`."""

    def __init__(self, config: BrokerConfig) -> None:
        self.broker = Broker(config)
        self.console: Console | None = None  # the web console and /metrics (config.ui)

    async def start(self) -> None:
        await self.broker.start()
        if not self.broker.config.ui:
            return
        assert self.broker.ctx is not None
        from .console import start_console  # FastAPI and uvicorn load only with the console

        try:
            self.console = await start_console(self.broker.ctx)
        except OSError as exc:  # a convenience: the broker serves on without it
            log.warning("%s; the broker runs without it", exc.strerror or exc)

    async def stop(self) -> None:
        if self.console is not None:
            await self.console.stop()
        await self.broker.stop()


async def run(config: BrokerConfig) -> None:
    """Serve until SIGINT or SIGTERM."""
    server = Server(config)
    await server.start()
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
    await stop.wait()
    log.info("shutting down")
    await server.stop()


def serve(config: BrokerConfig) -> int:
    """Run a broker in this process (the CLI's `minikafka serve`); returns the exit status."""
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run(config))
    except (KafkaError, OSError, ValueError) as exc:  # startup: port taken, dir locked, ...
        print(f"minikafka serve: {exc}", file=sys.stderr)
        return 1
    return 0
