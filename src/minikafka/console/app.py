"""The console's HTTP face: a JSON API over `service`, a live event stream, /metrics, the page.

Every route is `async def`, so it runs in the broker's event loop (FastAPI would send plain
`def` routes to a thread pool, where they would race the Kafka handlers).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from ..broker.context import BrokerContext, principal
from ..errors import ErrorCode, KafkaError
from ..registry.errors import RegistryError
from ..registry.service import Registry
from . import schemas as schema_view
from . import service
from .auth import SESSION_COOKIE, SESSION_SECONDS, LoginMiddleware, Sessions, session_id

STATIC = Path(__file__).parent / "static"
LIVE_INTERVAL_SECONDS = 1.0
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


class Login(BaseModel):
    username: str
    password: str


class SchemaCheck(BaseModel):
    schema_text: str = Field(alias="schema")
    schemaType: str = "AVRO"  # the registry's own field name


def create_app(ctx: BrokerContext, schemas: Registry | None = None) -> FastAPI:
    """The console of `ctx`'s broker; its Schemas page reads `schemas` (None: no registry)."""
    # No /docs: its page loads scripts from a CDN, and the machine may be offline.
    app = FastAPI(title="minikafka console", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(KafkaError)
    async def kafka_error(_request: Request, exc: KafkaError) -> JSONResponse:
        try:
            code = ErrorCode(exc.code)
        except ValueError:
            code = ErrorCode.UNKNOWN_SERVER_ERROR
        return JSONResponse({"error": str(exc), "code": code.name},
                            status_code=_STATUS.get(code, 400))

    sessions = Sessions()
    app.add_middleware(LoginMiddleware, ctx=ctx, sessions=sessions)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/login", include_in_schema=False)
    async def login_page() -> FileResponse:
        return FileResponse(STATIC / "login.html")

    @app.post("/api/login", status_code=204)
    async def login(body: Login) -> Response:
        """The user's password checked against their SCRAM credentials (as SASL PLAIN)."""
        if not ctx.credentials.check_plain(body.username, body.password):
            return JSONResponse({"error": "wrong user name or password",
                                 "code": "UNAUTHORIZED"}, status_code=401)
        answer = Response(status_code=204)
        answer.set_cookie(SESSION_COOKIE, sessions.open(body.username), max_age=SESSION_SECONDS,
                          httponly=True, samesite="strict", path="/")
        return answer

    @app.post("/api/logout", status_code=204)
    async def logout(request: Request) -> Response:
        sessions.close(session_id(request.scope))
        answer = Response(status_code=204)
        answer.delete_cookie(SESSION_COOKIE, path="/")
        return answer

    @app.get("/api/whoami")
    async def whoami() -> service.Json:
        return {"principal": principal.get(),
                "may_create_topics": service.may_create_topics(ctx)}

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/overview")
    async def overview() -> service.Json:
        return service.overview(ctx)

    @app.get("/api/stream")
    async def stream(request: Request) -> StreamingResponse:
        """Server-sent events: one `service.live` snapshot a second until the client leaves
        or the broker stops."""
        meter = service.RateMeter(ctx)

        async def events() -> AsyncIterator[str]:
            while not ctx.stopping and not await request.is_disconnected():
                yield f"data: {json.dumps(service.live(ctx, meter))}\n\n"
                await asyncio.sleep(LIVE_INTERVAL_SECONDS)

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

    @app.post("/api/topics/{topic}/partitions")
    async def add_partitions(topic: str, body: PartitionCount) -> service.Json:
        return await service.add_partitions(ctx, topic, body.count)

    @app.patch("/api/topics/{topic}/configs")
    async def alter_configs(topic: str, body: dict[str, str]) -> service.Json:
        return service.alter_configs(ctx, topic, body)

    @app.get("/api/topics/{topic}/partitions/{partition}/records")
    async def read_records(topic: str, partition: int,
                           start: Literal["beginning", "end", "offset", "timestamp"] = "beginning",
                           value: int | None = None, limit: int = Query(50, ge=1, le=500),
                           q: str = "") -> service.Json:
        return await service.read_records(
            ctx, topic, partition, start=start, value=value, limit=limit, query=q,
            decode=None if schemas is None else functools.partial(schema_view.decoded, schemas))

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
