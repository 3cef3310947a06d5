"""The schema registry built into `minikafka serve`: Confluent's Schema Registry REST API on its
own port (8081 by default), its state kept in the compacted topic `_schemas` of this broker.

A Starlette app run by uvicorn as a task in the broker's event loop, like the console, so it
appends to `_schemas` through the broker's service layer with no Kafka client and no locking
beyond its own one-write-at-a-time. The broker package never imports this one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..broker.context import BrokerContext
    from ..httpserver import AppServer
    from .service import Registry


def open_registry(ctx: BrokerContext) -> Registry:
    """The registry's state, read from `_schemas`, and its rules (for the REST API and the
    console). The schema libraries load on first use."""
    from .service import Registry
    from .store import SchemaStore

    store = SchemaStore(ctx)
    store.load()
    return Registry(store)


async def start_registry(ctx: BrokerContext, registry: Registry) -> AppServer:
    """Serve `registry` until `await server.stop()`. Starlette and uvicorn load here, so a
    broker without the registry never loads them."""
    from ..httpserver import AppServer
    from .app import create_app

    advertised, _ = ctx.config.advertised
    return await AppServer.serve(create_app(registry), ctx.config.host,
                                 ctx.config.schema_registry_port, advertised, "schema registry",
                                 "pick another with --schema-registry-port, 0 for a free one")


__all__ = ["open_registry", "start_registry"]
