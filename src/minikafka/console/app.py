"""The console's HTTP face: a JSON API over a `Cluster`, a live event stream, /metrics, the page.

Every route is `async def`, so it runs in the broker's event loop (FastAPI would send plain
`def` routes to a thread pool, where they would race the Kafka handlers).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, Field

from ..broker.context import BrokerContext
from ..errors import ErrorCode, KafkaError
from ..registry.errors import RegistryError
from ..registry.service import Registry
from . import browse
from . import schemas as schema_view
from .auth import add_login
from .cluster import (
    LIVE_INTERVAL_SECONDS,
    Cluster,
    InBroker,
    Json,
    RateHistory,
    RateMeter,
    Unsupported,
)

STATIC = Path(__file__).parent / "static"
_STATUS = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: 404,
    ErrorCode.GROUP_ID_NOT_FOUND: 404,
    ErrorCode.TOPIC_ALREADY_EXISTS: 409,
    ErrorCode.NON_EMPTY_GROUP: 409,
    ErrorCode.TOPIC_AUTHORIZATION_FAILED: 403,  # the ACLs forbid it the logged-in user
    ErrorCode.GROUP_AUTHORIZATION_FAILED: 403,
    ErrorCode.CLUSTER_AUTHORIZATION_FAILED: 403,
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
    limit: int = Field(50, ge=1, le=browse.MAX_PAGE)
    newest: bool = False  # newest first
    cursor: str = ""  # a previous page's: go on from there
    q: str = ""  # in key or value
    key: str = ""
    value_has: str = ""
    header: str = ""  # in "name: value"

    def filters(self) -> browse.Filters:
        return browse.Filters(self.q, self.key, self.value_has, self.header)

    def reading(self) -> dict[str, Any]:
        """Where a page starts and what it keeps: `browse.browse`'s keywords."""
        return {"start": self.start, "value": self.value, "newest": self.newest,
                "filters": self.filters()}


class SchemaCheck(BaseModel):
    schema_text: str = Field(alias="schema")
    schemaType: str = "AVRO"  # the registry's own field name


def create_app(ctx: BrokerContext, schemas: Registry | None = None) -> FastAPI:
    """The console of `ctx`'s broker, with its users' login; its Schemas page reads `schemas`
    (None: no registry)."""
    return console_app(InBroker(ctx, schemas), schemas, ctx.metrics.registry,
                       login=functools.partial(add_login, ctx=ctx))


def console_app(cluster: Cluster, schemas: Registry | None = None,
                metrics: CollectorRegistry | None = None,
                login: Callable[[FastAPI], None] | None = None) -> FastAPI:
    """The console of `cluster`, with /metrics from `metrics` (None: no /metrics) and `login`
    installing who may use it (None: anyone who reaches it). Called in the event loop it will
    serve from: it starts sampling the cluster's rates there."""
    history = RateHistory(cluster)
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

    if login is None:
        @app.get("/api/whoami")
        async def whoami() -> Json:
            """No login here: the cluster's own credentials decide (what -X gave)."""
            return {"principal": None, "may_create_topics": True}
    else:
        login(app)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(Unsupported)
    async def unsupported(_request: Request, exc: Unsupported) -> JSONResponse:
        return JSONResponse({"error": str(exc), "code": "UNSUPPORTED"}, status_code=501)

    @app.get("/metrics")
    async def prometheus() -> Response:
        if metrics is None:
            raise Unsupported("no /metrics: this console watches a remote cluster, whose "
                              "brokers export their own")
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/overview")
    async def overview() -> Json:
        return {**await cluster.overview(), "history": list(history.samples)}

    @app.get("/api/stream")
    async def stream(request: Request) -> StreamingResponse:
        """Server-sent events: one `Cluster.live` snapshot a second until the client leaves
        or the broker stops; the first also carries the recent rate history."""
        meter = RateMeter(cluster)
        await meter.rates()

        async def events() -> AsyncIterator[str]:
            extra: Json = {"history": list(history.samples)}
            while not cluster.stopping and not await request.is_disconnected():
                data = {**await cluster.live(), "rates": await meter.rates(), **extra}
                yield f"data: {json.dumps(data)}\n\n"
                extra = {}
                await asyncio.sleep(LIVE_INTERVAL_SECONDS)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @app.get("/api/topics")
    async def list_topics() -> list[Json]:
        return await cluster.list_topics()

    @app.post("/api/topics", status_code=201)
    async def create_topic(body: NewTopic) -> Json:
        return await cluster.create_topic(body.name, body.partitions, body.configs)

    @app.get("/api/topics/{topic}")
    async def describe_topic(topic: str) -> Json:
        return await cluster.describe_topic(topic)

    @app.delete("/api/topics/{topic}", status_code=204)
    async def delete_topic(topic: str) -> None:
        await cluster.delete_topic(topic)

    @app.delete("/api/topics/{topic}/records")
    async def purge(topic: str, partition: int | None = None) -> Json:
        return await cluster.purge_topic(topic, partition)

    @app.post("/api/topics/{topic}/partitions")
    async def add_partitions(topic: str, body: PartitionCount) -> Json:
        return await cluster.add_partitions(topic, body.count)

    @app.patch("/api/topics/{topic}/configs")
    async def alter_configs(topic: str, body: dict[str, str]) -> Json:
        return await cluster.alter_configs(topic, body)

    @app.get("/api/topics/{topic}/records")
    async def read_records(topic: str, page: Annotated[Page, Query()]) -> Json:
        return await cluster.browse(topic, page.partition, limit=page.limit,
                                    cursor=browse.parse_cursor(page.cursor) or None,
                                    **page.reading())

    @app.get("/api/topics/{topic}/export")
    async def export(topic: str, page: Annotated[Page, Query()]) -> StreamingResponse:
        """JSON lines, a download."""
        await cluster.describe_topic(topic)  # a missing topic is a 404, not an empty file
        lines = cluster.export(topic, page.partition, **page.reading())
        return StreamingResponse(lines, media_type="application/x-ndjson", headers={
            "Content-Disposition": f'attachment; filename="{quote(topic)}.jsonl"'})

    @app.post("/api/topics/{topic}/records", status_code=201)
    async def produce(topic: str, body: NewRecord) -> Json:
        return await cluster.produce(topic, body.partition, body.key, body.value,
                                     body.headers)

    @app.get("/api/groups")
    async def list_groups() -> list[Json]:
        return await cluster.list_groups()

    @app.get("/api/groups/{group}")
    async def describe_group(group: str) -> Json:
        return await cluster.describe_group(group)

    @app.get("/api/transactions")
    async def list_transactions() -> list[Json]:
        return await cluster.list_transactions()

    @app.delete("/api/groups/{group}", status_code=204)
    async def delete_group(group: str) -> None:
        await cluster.delete_group(group)

    @app.post("/api/groups/{group}/reset-offsets")
    async def reset_offsets(group: str, body: OffsetReset) -> Json:
        return await cluster.reset_offsets(group, body.topic, body.to, body.value)

    @app.exception_handler(RegistryError)
    async def registry_error(_request: Request, exc: RegistryError) -> JSONResponse:
        return JSONResponse({"error": exc.message, "code": exc.code}, status_code=exc.status)

    @app.get("/api/schemas")
    async def list_subjects() -> Json:
        return schema_view.subjects(schemas)

    @app.get("/api/schemas/{subject}")
    async def describe_subject(subject: str) -> Json:
        return schema_view.subject(schema_view.running(schemas), subject)

    @app.post("/api/schemas/{subject}/check")
    async def check_schema(subject: str, body: SchemaCheck) -> Json:
        return schema_view.check(schema_view.running(schemas), subject, body.schema_text,
                                 body.schemaType)

    return app
