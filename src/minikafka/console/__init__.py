"""The web console and Prometheus /metrics, served by `minikafka serve` on its own port.

A FastAPI app run by uvicorn as a task in the broker's own event loop (not a thread), so every
page reads the log, the partitions and the group coordinator exactly as the Kafka handlers do,
with no locking.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..broker.context import BrokerContext
    from ..registry.service import Registry
    from .server import Console


async def start_console(ctx: BrokerContext, schemas: Registry | None = None) -> Console:
    """Serve the console for `ctx`'s broker (and its schema registry's `schemas`, if it runs
    one) until `await console.stop()`. FastAPI and uvicorn are imported here, so a broker
    started with --no-ui never loads them."""
    from .server import Console

    return await Console.start(ctx, schemas)


__all__ = ["start_console"]
