"""The broker process: owns the data directory, accepts connections, shuts down cleanly.

On SIGINT/SIGTERM it stops accepting, stops reading requests, answers those already read (long
polls return at once), flushes the log and exits 0. Recovery on the next start is the log's job.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from ..console import start_console
from ..errors import KafkaError
from ..log import LogManager
from ..log.durable import MetadataFileError
from .config import BrokerConfig
from .connection import Connection
from .context import BrokerContext
from .group_service import GroupService
from .handlers import build_registry
from .meta import load_cluster_id
from .producer_ids import ProducerIdManager

if TYPE_CHECKING:
    from ..console.server import Console

log = logging.getLogger("minikafka.broker")

SHUTDOWN_GRACE_SECONDS = 5.0


class Broker:
    """`await start()`, then `await stop()`; `config.port` holds the bound port once started."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.ctx: BrokerContext | None = None
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], Connection] = {}
        self.console: Console | None = None  # the web console and /metrics (config.ui)
        self._retention: asyncio.Task[None] | None = None

    async def start(self) -> None:
        logmgr = LogManager(self.config.data_dir, exclusive=True, flush_policy=self.config.flush,
                            producer_id_expiration_ms=self.config.producer_id_expiration_ms)
        self.ctx = BrokerContext(
            config=self.config, log=logmgr, cluster_id=load_cluster_id(logmgr.meta_dir),
            producer_ids=ProducerIdManager(logmgr.meta_dir),
            groups=GroupService(self.config, logmgr.offsets), apis=build_registry())
        self.ctx.metrics.attach(logmgr, self.ctx.commits, lambda: len(self._connections))
        for topic in logmgr.topics():  # a damaged one is unavailable; the others are served
            try:
                logmgr.topic_config(topic)
            except MetadataFileError as exc:
                log.error("topic %s is unavailable until its config is repaired: %s", topic, exc)
        try:
            self._server = await asyncio.get_running_loop().create_server(
                self._accept, self.config.host, self.config.port, reuse_address=True)
        except BaseException:
            await self.ctx.groups.close()
            logmgr.close()
            raise
        self._retention = asyncio.get_running_loop().create_task(self._apply_retention())
        port = self._server.sockets[0].getsockname()[1]
        self.config = self.ctx.config = replace(self.config, port=port)
        host, _ = self.config.advertised
        logmgr.lock.write_owner_info({"host": host, "port": port})
        if self.config.ui:
            try:
                self.console = await start_console(self.ctx)
            except OSError:
                await self.stop()
                raise

    async def _apply_retention(self) -> None:
        """Kafka's log retention checker: idle logs still lose their expired segments."""
        assert self.ctx is not None
        while True:
            await asyncio.sleep(self.config.log_retention_check_interval_ms / 1000)
            try:  # inline: unlinking whole segments is quick, and no thread outlives stop()
                removed = self.ctx.log.apply_retention()
            except OSError as exc:
                log.warning("retention check failed: %s", exc)
                continue
            if removed:
                log.info("retention removed %d segment(s)", removed)

    @property
    def address(self) -> str:
        host, port = self.config.advertised
        return f"{host}:{port}"

    def _accept(self) -> Connection:
        assert self.ctx is not None
        return Connection(self.ctx, self._track)

    def _track(self, task: asyncio.Task[None], connection: Connection) -> None:
        self._connections[task] = connection
        task.add_done_callback(self._connections.pop)

    async def stop(self) -> None:
        assert self.ctx is not None and self._server is not None
        ctx = self.ctx
        ctx.stopping = True
        self._server.close()
        if self._retention is not None:
            self._retention.cancel()
        for connection in self._connections.values():
            connection.stop_reading()
        ctx.appends.wake_all()
        ctx.groups.stop_waiting()  # held JoinGroup/SyncGroup requests are answered now
        pending = list(self._connections)
        if pending:
            _done, stuck = await asyncio.wait(pending, timeout=SHUTDOWN_GRACE_SECONDS)
            for task in stuck:  # clients that do not read their answers
                task.cancel()
            if stuck:
                await asyncio.wait(stuck)
        if self.console is not None:
            await self.console.stop()
        await ctx.groups.close()
        await asyncio.to_thread(ctx.log.flush)
        ctx.log.close()


async def run(config: BrokerConfig) -> None:
    """Serve until SIGINT or SIGTERM."""
    broker = Broker(config)
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"minikafka broker listening on {config.host}:{broker.config.port}; "
          f"clients use bootstrap servers {broker.address} (data in {config.data_dir})",
          flush=True)
    if broker.console is not None:
        print(f"minikafka console at {broker.console.url} "
              f"(Prometheus metrics at {broker.console.url}metrics)", flush=True)
    await stop.wait()
    log.info("shutting down")
    await broker.stop()


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
