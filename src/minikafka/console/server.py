"""uvicorn inside the broker: started and stopped by the broker, never by a signal."""

from __future__ import annotations

from ..broker.context import BrokerContext
from ..httpserver import AppServer
from ..registry.service import Registry
from .app import create_app


class Console(AppServer):
    """The running console (live streams end once the broker is stopping)."""

    @classmethod
    async def start(cls, ctx: BrokerContext, schemas: Registry | None = None) -> Console:
        advertised, _ = ctx.config.advertised
        return await cls.serve(create_app(ctx, schemas), ctx.config.host, ctx.config.ui_port,
                               advertised, "web console",
                               "pick another with --ui-port, 0 for a free one")
