"""What the console reads and changes, behind one interface with two implementations: this
broker, in its own event loop (`InBroker`, over `service`), or any Kafka-compatible cluster over
the wire (`remote.Remote`, for `minikafka console -b`). Chosen once, at start."""

from __future__ import annotations

import asyncio
import functools
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..broker.context import BrokerContext
from ..clock import wall_ms
from . import browse, service
from . import schemas as schema_view

if TYPE_CHECKING:
    from ..registry.service import Registry

Json = dict[str, Any]
LIVE_INTERVAL_SECONDS = 1.0
HISTORY_SECONDS = 300  # the rate history kept for fresh pages: 5 minutes of 1-second samples


class Unsupported(Exception):
    """What this cluster cannot give the console (a page says why)."""


class Cluster(Protocol):
    """The console's data access; failures raise `KafkaError`s (or `Unsupported`)."""

    @property
    def stopping(self) -> bool: ...

    async def traffic(self) -> dict[str, float]:
        """Totals since some start (records and bytes in and out; what is unknown stays 0)."""
        ...

    async def overview(self) -> Json: ...

    async def live(self) -> Json:
        """The overview with the topic, group and open-transaction lists."""
        ...

    async def list_topics(self) -> list[Json]: ...

    async def describe_topic(self, name: str) -> Json: ...

    async def create_topic(self, name: str, partitions: int | None,
                           configs: dict[str, str]) -> Json: ...

    async def delete_topic(self, name: str) -> None: ...

    async def add_partitions(self, name: str, total: int) -> Json: ...

    async def alter_configs(self, name: str, configs: dict[str, str]) -> Json: ...

    async def purge_topic(self, name: str, partition: int | None) -> Json: ...

    async def browse(self, topic: str, partition: int | None, **page: Any) -> Json:
        """`browse.browse` over the topic's partitions, or one."""
        ...

    def export(self, topic: str, partition: int | None, **page: Any) -> AsyncIterator[str]:
        """`browse.export` over the topic's partitions, or one."""
        ...

    async def produce(self, topic: str, partition: int | None, key: str | None,
                      value: str | None, headers: Sequence[tuple[str, str]]) -> Json: ...

    async def list_groups(self) -> list[Json]: ...

    async def describe_group(self, group: str) -> Json: ...

    async def delete_group(self, group: str) -> None: ...

    async def reset_offsets(self, group: str, topic: str, to: str, value: int | None) -> Json: ...

    async def list_transactions(self) -> list[Json]: ...


class RateMeter:
    """Per-second traffic between two looks at a cluster's totals."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._last: tuple[float, dict[str, float]] | None = None

    async def rates(self) -> dict[str, float]:
        now, traffic = time.monotonic(), await self._cluster.traffic()
        then, before = self._last or (now, traffic)
        self._last = (now, traffic)
        elapsed = max(now - then, 1e-3)
        return {name: (new - before[name]) / elapsed for name, new in traffic.items()}


class RateHistory:
    """A cluster's rates, sampled each second for the last HISTORY_SECONDS (a bounded ring),
    so that a page opened now draws the recent past rather than an empty chart."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._meter = RateMeter(cluster)
        self.samples: deque[Json] = deque(maxlen=HISTORY_SECONDS)

    async def run(self) -> None:
        """Sample until the cluster's console stops (or the task is cancelled)."""
        await self._meter.rates()
        while not self._cluster.stopping:
            await asyncio.sleep(LIVE_INTERVAL_SECONDS)
            self.samples.append({"time": wall_ms(), **await self._meter.rates()})


class InBroker:
    """This broker's console: `service` in the broker's own event loop."""

    def __init__(self, ctx: BrokerContext, schemas: Registry | None = None) -> None:
        self.ctx = ctx
        # Records written with a registered schema are shown decoded (None: no registry).
        self._decode = None if schemas is None else functools.partial(schema_view.decoded,
                                                                      schemas)

    @property
    def stopping(self) -> bool:
        return self.ctx.stopping

    async def traffic(self) -> dict[str, float]:
        return self.ctx.metrics.traffic()._asdict()

    async def overview(self) -> Json:
        return service.overview(self.ctx)

    async def live(self) -> Json:
        return service.live(self.ctx)

    async def list_topics(self) -> list[Json]:
        return service.list_topics(self.ctx)

    async def describe_topic(self, name: str) -> Json:
        return service.describe_topic(self.ctx, name)

    async def create_topic(self, name: str, partitions: int | None,
                           configs: dict[str, str]) -> Json:
        return await service.create_topic(self.ctx, name, partitions, configs)

    async def delete_topic(self, name: str) -> None:
        await service.delete_topic(self.ctx, name)

    async def add_partitions(self, name: str, total: int) -> Json:
        return await service.add_partitions(self.ctx, name, total)

    async def alter_configs(self, name: str, configs: dict[str, str]) -> Json:
        return service.alter_configs(self.ctx, name, configs)

    async def purge_topic(self, name: str, partition: int | None) -> Json:
        return service.purge_topic(self.ctx, name, partition)

    async def browse(self, topic: str, partition: int | None, **page: Any) -> Json:
        return await browse.browse(topic, service.readers(self.ctx, topic, partition),
                                   decode=self._decode, **page)

    def export(self, topic: str, partition: int | None, **page: Any) -> AsyncIterator[str]:
        return browse.export(topic, service.readers(self.ctx, topic, partition), **page)

    async def produce(self, topic: str, partition: int | None, key: str | None,
                      value: str | None, headers: Sequence[tuple[str, str]]) -> Json:
        return await service.produce(self.ctx, topic, partition, key, value, headers)

    async def list_groups(self) -> list[Json]:
        return service.list_groups(self.ctx)

    async def describe_group(self, group: str) -> Json:
        return service.describe_group(self.ctx, group)

    async def delete_group(self, group: str) -> None:
        service.delete_group(self.ctx, group)

    async def reset_offsets(self, group: str, topic: str, to: str, value: int | None) -> Json:
        return await service.reset_offsets(self.ctx, group, topic, to, value)

    async def list_transactions(self) -> list[Json]:
        return service.list_transactions(self.ctx)
