"""The console's HTTP face: a JSON API over `service`, a live event stream, /metrics, the page.

Every route is `async def`, so it runs in the broker's event loop (FastAPI would send plain
`def` routes to a thread pool, where they would race the Kafka handlers).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from ..broker.context import BrokerContext
from ..errors import ErrorCode, KafkaError
from ..registry.errors import RegistryError
from ..registry.service import Registry
from . import schemas as schema_view
from . import service

STATIC = Path(__file__).parent / "static"
_STATUS = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: 404,
    ErrorCode.GROUP_ID_NOT_FOUND: 404,
    ErrorCode.TOPIC_ALREADY_EXISTS: 409,
    ErrorCode.NON_EMPTY_GROUP: 409,
}


class NewTopic(BaseModel):
    name: str
    partitions: int | None = None  # None: the broker's num_partitions
    configs: dict[str, str] = Field(default_factory=dict)


class PartitionCount(BaseModel):
    count: int


class NewRecord(BaseModel):
    partition: int | None = None  # None: by key, or random
    key: str | None = None
    value: str | None = None
    headers: list[tuple[str, str]] = Field(default_factory=list)


class OffsetReset(BaseModel):
    topic: str
    to: Literal["earliest", "latest", "offset", "timestamp"]
    value: int | None = None


class Page(BaseModel):
    """Which records a message-browser page (or an export) shows."""

    partition: int | None = None  # None: all, merged by timestamp
    start: Literal["beginning", "end", "offset", "timestamp"] = "beginning"
    value: int | None = None  # the offset or timestamp to start at
    limit: int = Field(50, ge=1, le=service.MAX_PAGE)
    newest: bool = False  # newest first
    cursor: str = ""  # a previous page's: go on from there
    q: str = ""  # in key or value
    key: str = ""
    value_has: str = ""
    header: str = ""  # in "name: value"

    def filters(self) -> service.Filters:
        return service.Filters(self.q, self.key, self.value_has, self.header)


class SchemaCheck(BaseModel):
    schema_text: str = Field(alias="schema")
    schemaType: str = "AVRO"  # the registry's own field name


def create_app(ctx: BrokerContext, schemas: Registry | None = None) -> FastAPI:
    """The console of `ctx`'s broker; its Schemas page reads `schemas` (None: no registry).
    Called in the broker's loop: it starts sampling the broker's rates there."""
    history = service.RateHistory(ctx)
    # No /docs: its page loads scripts from a CDN, and the machine may be offline.
    app = FastAPI(title="minikafka console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sampler = asyncio.get_running_loop().create_task(history.run())

    @app.exception_handler(KafkaError)
    async def kafka_error(_request: Request, exc: KafkaError) -> JSONResponse:
        try:
            code = ErrorCode(exc.code)
        except ValueError:
            code = ErrorCode.UNKNOWN_SERVER_ERROR
        return JSONResponse({"error": str(exc), "code": code.name},
                            status_code=_STATUS.get(code, 400))

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/overview")
    async def overview() -> service.Json:
        return {**service.overview(ctx), "history": list(history.samples)}

    @app.get("/api/stream")
    async def stream(request: Request) -> StreamingResponse:
        """Server-sent events: one `service.live` snapshot a second until the client leaves
        or the broker stops; the first also carries the recent rate history."""
        meter = service.RateMeter(ctx)

        async def events() -> AsyncIterator[str]:
            extra: service.Json = {"history": list(history.samples)}
            while not ctx.stopping and not await request.is_disconnected():
                yield f"data: {json.dumps({**service.live(ctx, meter), **extra})}\n\n"
                extra = {}
                await asyncio.sleep(service.LIVE_INTERVAL_SECONDS)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @app.get("/api/topics")
    async def list_topics() -> list[service.Json]:
        return service.list_topics(ctx)

    @app.post("/api/topics", status_code=201)
    async def create_topic(body: NewTopic) -> service.Json:
        return await service.create_topic(ctx, body.name, body.partitions, body.configs)

    @app.get("/api/topics/{topic}")
    async def describe_topic(topic: str) -> service.Json:
        return service.describe_topic(ctx, topic)

    @app.delete("/api/topics/{topic}", status_code=204)
    async def delete_topic(topic: str) -> None:
        await service.delete_topic(ctx, topic)

    @app.delete("/api/topics/{topic}/records")
    async def purge(topic: str, partition: int | None = None) -> service.Json:
        return service.purge_topic(ctx, topic, partition)

    @app.post("/api/topics/{topic}/partitions")
    async def add_partitions(topic: str, body: PartitionCount) -> service.Json:
        return await service.add_partitions(ctx, topic, body.count)

    @app.patch("/api/topics/{topic}/configs")
    async def alter_configs(topic: str, body: dict[str, str]) -> service.Json:
        return service.alter_configs(ctx, topic, body)

    @app.get("/api/topics/{topic}/records")
    async def browse(topic: str, page: Annotated[Page, Query()]) -> service.Json:
        return await service.browse(ctx, topic, page.partition, start=page.start,
                                    value=page.value, limit=page.limit, newest=page.newest,
                                    filters=page.filters(),
                                    cursor=service.parse_cursor(page.cursor) or None)

    @app.get("/api/topics/{topic}/export")
    async def export(topic: str, page: Annotated[Page, Query()]) -> StreamingResponse:
        """JSON lines, a download."""
        service.describe_topic(ctx, topic)  # a missing topic is a 404, not an empty file
        lines = service.export(ctx, topic, page.partition, start=page.start, value=page.value,
                               newest=page.newest, filters=page.filters())
        return StreamingResponse(lines, media_type="application/x-ndjson", headers={
            "Content-Disposition": f'attachment; filename="{quote(topic)}.jsonl"'})

    @app.post("/api/topics/{topic}/records", status_code=201)
    async def produce(topic: str, body: NewRecord) -> service.Json:
        return await service.produce(ctx, topic, body.partition, body.key, body.value,
                                     body.headers)

    @app.get("/api/groups")
    async def list_groups() -> list[service.Json]:
        return service.list_groups(ctx)

    @app.get("/api/groups/{group}")
    async def describe_group(group: str) -> service.Json:
        return service.describe_group(ctx, group)

    @app.get("/api/transactions")
    async def list_transactions() -> list[service.Json]:
        return service.list_transactions(ctx)

    @app.delete("/api/groups/{group}", status_code=204)
    async def delete_group(group: str) -> None:
        service.delete_group(ctx, group)

    @app.post("/api/groups/{group}/reset-offsets")
    async def reset_offsets(group: str, body: OffsetReset) -> service.Json:
        return await service.reset_offsets(ctx, group, body.topic, body.to, body.value)

    @app.exception_handler(RegistryError)
    async def registry_error(_request: Request, exc: RegistryError) -> JSONResponse:
        return JSONResponse({"error": exc.message, "code": exc.code}, status_code=exc.status)

    @app.get("/api/schemas")
    async def list_subjects() -> service.Json:
        return schema_view.subjects(schemas)

    @app.get("/api/schemas/{subject}")
    async def describe_subject(subject: str) -> service.Json:
        return schema_view.subject(schema_view.running(schemas), subject)

    @app.post("/api/schemas/{subject}/check")
    async def check_schema(subject: str, body: SchemaCheck) -> service.Json:
        return schema_view.check(schema_view.running(schemas), subject, body.schema_text,
                                 body.schemaType)

    return app
