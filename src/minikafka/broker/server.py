"""The broker: owns the data directory, accepts connections, shuts down cleanly.

`stop()` stops accepting, stops reading requests, answers those already read (long polls return
at once) and flushes the log. Recovery on the next start is the log's job. The process around it
(signals, the web console) is `minikafka.serve`'s.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import replace

from ..errors import KafkaError, KafkaStorageError
from ..log import LogManager
from ..log.cleaner import CleanerConfig, LogCleaner
from ..log.producer_ids import ProducerIdManager
from . import ops
from .acls import Authorizer, parse_super_users
from .bounds import ConnectionLimits, RequestBudget
from .config import BrokerConfig
from .connection import Connection
from .context import BrokerContext
from .credentials import CredentialStore
from .fetch_sessions import FetchSessionCache
from .group_service import GroupService
from .handlers import build_registry
from .meta import load_cluster_id
from .quotas import ClientQuotas
from .tls import server_context
from .transaction_service import TransactionService

log = logging.getLogger("minikafka.broker")

SHUTDOWN_GRACE_SECONDS = 5.0


class Broker:
    """`await start()`, then `await stop()`; `config.port` holds the bound port once started."""

    def __init__(self, config: BrokerConfig) -> None:
        self.config = config
        self.ctx: BrokerContext | None = None
        self._servers: list[asyncio.Server] = []  # one per listener
        self._connections: dict[asyncio.Task[None], Connection] = {}
        self._cleaner: LogCleaner | None = None
        self._tasks: list[asyncio.Task[None]] = []  # periodic checks, cancelled on stop

    async def start(self) -> None:
        logmgr = LogManager(self.config.data_dir, exclusive=True, flush_policy=self.config.flush,
                            producer_id_expiration_ms=self.config.producer_id_expiration_ms,
                            topic_defaults=self.config.topic_defaults())
        self.ctx = BrokerContext(
            config=self.config, log=logmgr,
            cluster_id=load_cluster_id(logmgr.meta_dir, self.config.node_id),
            producer_ids=ProducerIdManager(logmgr.meta_dir),
            groups=GroupService(self.config, logmgr.offsets),
            transactions=TransactionService.open(self.config, logmgr.meta_dir),
            budget=RequestBudget(self.config.queued_max_request_bytes),
            connections=ConnectionLimits(self.config.max_connections,
                                         self.config.max_connections_per_ip),
            credentials=CredentialStore(logmgr.meta_dir),
            quotas=ClientQuotas(samples=self.config.quota_window_num,
                                window_seconds=self.config.quota_window_size_seconds),
            fetch_sessions=FetchSessionCache(
                self.config.max_incremental_fetch_session_cache_slots),
            apis=build_registry(),
            authorizer=Authorizer(
                logmgr.meta_dir, parse_super_users(self.config.super_users),
                self.config.allow_everyone_if_no_acl_found,
            ) if self.config.authorizer_class_name else None)
        ops.load_client_quotas(self.ctx)
        self.ctx.metrics.attach(logmgr, self.ctx.commits, lambda: len(self._connections))
        try:
            await self._listen()
        except BaseException:
            await self._close_servers()
            await self.ctx.groups.close()
            self.ctx.transactions.log.close()
            logmgr.close()
            raise
        self._every(self.config.log_retention_check_interval_ms, _apply_retention)
        if self.config.log_cleaner_enable:
            self._cleaner = self._start_cleaner(logmgr)
        # Transactions a restart left in Prepare* get their markers before the first request.
        await ops.abort_timed_out_transactions(self.ctx)
        self._every(self.config.transaction_abort_timed_out_transaction_cleanup_interval_ms,
                    ops.abort_timed_out_transactions)
        self._every(self.config.transaction_remove_expired_transaction_cleanup_interval_ms,
                    ops.expire_transactional_ids)
        host, port = self.config.advertised
        try:
            logmgr.lock.write_owner_info({"host": host, "port": port})
        except KafkaStorageError as exc:  # it only points embedded clients here
            log.warning("%s; embedded clients will not be told where the broker listens",
                        str(exc))

    def _start_cleaner(self, logmgr: LogManager) -> LogCleaner:
        """The log cleaner's thread (compaction reads and writes whole segments: off the loop)."""
        assert self.ctx is not None
        c = self.config
        cleaner = LogCleaner(logmgr, CleanerConfig(
            io_max_bytes_per_second=c.log_cleaner_io_max_bytes_per_second,
            dedupe_buffer_size=c.log_cleaner_dedupe_buffer_size),
            c.log_cleaner_backoff_ms, on_cleaned=self.ctx.metrics.cleaned)
        cleaner.start()
        return cleaner

    async def _listen(self) -> None:
        """Bind every listener; then the config holds the ports bound (for port 0)."""
        assert self.ctx is not None
        loop = asyncio.get_running_loop()
        bound = []
        tls = self._tls_context()
        for listener in self.config.bind_listeners:
            protocol = self.config.security_protocol(listener.name)
            server = await loop.create_server(
                functools.partial(self._accept, listener.name,
                                  tls if protocol.endswith("SSL") else None,
                                  protocol.startswith("SASL")),
                listener.host or None, listener.port, reuse_address=True)
            self._servers.append(server)
            bound.append(replace(listener, port=server.sockets[0].getsockname()[1]))
        listeners = None if self.config.listeners is None else ",".join(map(str, bound))
        self.config = self.ctx.config = replace(self.config, port=bound[0].port,
                                                listeners=listeners)

    def _tls_context(self) -> ssl.SSLContext | None:
        """The TLS listeners' context (one for all of them), or None if none speaks TLS."""
        config = self.config
        if config.ssl_certfile is None:
            return None
        try:
            return server_context(config.ssl_certfile, config.ssl_keyfile,
                                  config.ssl_key_password, config.ssl_cafile,
                                  config.ssl_client_auth)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load the TLS certificate or key (ssl_certfile "
                             f"{config.ssl_certfile}): {exc}") from exc

    async def _close_servers(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()

    def _every(self, interval_ms: int, check: Callable[[BrokerContext], Awaitable[None]]
               ) -> None:
        """Run `check` every `interval_ms` until the broker stops."""
        async def repeat() -> None:
            assert self.ctx is not None
            while True:
                await asyncio.sleep(interval_ms / 1000)
                try:
                    await check(self.ctx)
                except (OSError, KafkaError) as exc:
                    log.warning("%s failed, will retry: %s", check.__name__, exc)

        self._tasks.append(asyncio.get_running_loop().create_task(repeat()))

    @property
    def address(self) -> str:
        host, port = self.config.advertised
        return f"{host}:{port}"

    def _accept(self, listener: str, tls: ssl.SSLContext | None, sasl: bool) -> Connection:
        assert self.ctx is not None
        return Connection(self.ctx, self._track, listener, tls, sasl)

    def _track(self, task: asyncio.Task[None], connection: Connection) -> None:
        self._connections[task] = connection
        task.add_done_callback(self._connections.pop)

    async def stop(self) -> None:
        assert self.ctx is not None
        ctx = self.ctx
        ctx.stopping = True
        await self._close_servers()
        for task in self._tasks:
            task.cancel()
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
        await ctx.groups.close()
        await ops.transaction_work_done()
        if self._cleaner is not None:
            await asyncio.to_thread(self._cleaner.stop)  # within a batch's work
        await asyncio.to_thread(ctx.log.flush)
        await asyncio.to_thread(ctx.transactions.log.flush)
        ctx.transactions.log.close()
        ctx.log.close()


async def _apply_retention(ctx: BrokerContext) -> None:
    """Kafka's log retention checker: idle logs still lose their expired segments (inline, a
    partition at a time: unlinking whole segments is quick)."""
    removed = 0
    for count in ctx.log.retention_steps():
        removed += count
        await asyncio.sleep(0)
    if removed:
        log.info("retention removed %d segment(s)", removed)
