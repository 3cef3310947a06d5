"""Confluent's Schema Registry REST API as a Starlette app: each route reads its path, query and
JSON body, asks the `Registry`, and answers in `application/vnd.schemaregistry.v1+json`; a
refusal is its HTTP status with `{"error_code": ..., "message": ...}`."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .errors import RegistryError, bad_request
from .formats import SCHEMA_TYPES
from .service import Registry
from .store import SchemaVersion

log = logging.getLogger("minikafka.registry")

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
MAX_BODY_BYTES = 1024 * 1024  # the default max.message.bytes of the topic it is stored in
Handler = Callable[[Registry, Request], Awaitable[Any]]


class RegistryResponse(Response):
    media_type = CONTENT_TYPE

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


async def _body(request: Request) -> Any:
    """The JSON body, read only up to MAX_BODY_BYTES (no schema bigger fits in `_schemas`)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RegistryError(413, 413, f"Request body larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        return json.loads(raw or b"{}")
    except ValueError as exc:
        raise RegistryError(400, 400, f"Unexpected body: {exc}") from None


def _int(raw: str, what: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"invalid {what} {raw!r}") from None


# --- routes ---------------------------------------------------------------------------------------


async def root(registry: Registry, request: Request) -> Any:
    return {}


async def schema_types(registry: Registry, request: Request) -> Any:
    return list(SCHEMA_TYPES)


async def schemas(registry: Registry, request: Request) -> Any:
    return [v.to_json() for v in registry.all_schemas(
        request.query_params.get("subjectPrefix", ""), _flag(request, "deleted"),
        _flag(request, "latestOnly"))]


async def schema_by_id(registry: Registry, request: Request) -> Any:
    found = registry.schema(_int(request.path_params["id"], "schema id"))
    return _formatted(registry, request, found, found.schema_json())


async def schema_text_by_id(registry: Registry, request: Request) -> Any:
    return RawSchema(registry.schema(_int(request.path_params["id"], "schema id")).schema)


async def schema_subjects(registry: Registry, request: Request) -> Any:
    holders = registry.holders(_int(request.path_params["id"], "schema id"),
                               _flag(request, "deleted"))
    return sorted({v.subject for v in holders})


async def schema_versions(registry: Registry, request: Request) -> Any:
    return [{"subject": v.subject, "version": v.version} for v in registry.holders(
        _int(request.path_params["id"], "schema id"), _flag(request, "deleted"))]


async def subjects(registry: Registry, request: Request) -> Any:
    return registry.subjects(request.query_params.get("subjectPrefix", ""),
                             _flag(request, "deleted"))


async def lookup(registry: Registry, request: Request) -> Any:
    return registry.lookup(request.path_params["subject"], await _body(request),
                           _flag(request, "normalize"), _flag(request, "deleted")).to_json()


async def delete_subject(registry: Registry, request: Request) -> Any:
    return await registry.delete_subject(request.path_params["subject"],
                                         _flag(request, "permanent"))


async def versions(registry: Registry, request: Request) -> Any:
    return [v.version for v in registry.versions(request.path_params["subject"],
                                                 _flag(request, "deleted"))]


async def register(registry: Registry, request: Request) -> Any:
    version = await registry.register(request.path_params["subject"], await _body(request),
                                      _flag(request, "normalize"))
    return {"id": version.id}


async def version(registry: Registry, request: Request) -> Any:
    found = registry.version(request.path_params["subject"], request.path_params["version"],
                             _flag(request, "deleted"))
    return _formatted(registry, request, found, found.to_json())


def _formatted(registry: Registry, request: Request, found: SchemaVersion,
               answer: dict[str, Any]) -> dict[str, Any]:
    """`answer` with its schema in the `?format=` asked for (Protobuf: serialized)."""
    answer["schema"] = registry.formatted(found, request.query_params.get("format"))
    return answer


async def version_schema(registry: Registry, request: Request) -> Any:
    return RawSchema(registry.version(request.path_params["subject"],
                                      request.path_params["version"],
                                      _flag(request, "deleted")).schema)


async def referenced_by(registry: Registry, request: Request) -> Any:
    return registry.referenced_by(registry.version(request.path_params["subject"],
                                                   request.path_params["version"], True))


async def delete_version(registry: Registry, request: Request) -> Any:
    return await registry.delete_version(request.path_params["subject"],
                                         request.path_params["version"],
                                         _flag(request, "permanent"))


async def check_version(registry: Registry, request: Request) -> Any:
    """POST /compatibility/subjects/{s}/versions/{v}: the schema against that one version."""
    subject = request.path_params["subject"]
    against = registry.version(subject, request.path_params["version"])
    return _compatibility(request, registry.incompatibilities(
        registry.candidate(await _body(request)), registry.level(subject), [against]))


async def check_versions(registry: Registry, request: Request) -> Any:
    """POST /compatibility/subjects/{s}/versions: as registering would check it."""
    subject = request.path_params["subject"]
    return _compatibility(request, registry.incompatibilities(
        registry.candidate(await _body(request)), registry.level(subject),
        registry.state.versions(subject)))


def _compatibility(request: Request, problems: list[str]) -> Any:
    answer: dict[str, Any] = {"is_compatible": not problems}
    if _flag(request, "verbose"):
        answer["messages"] = problems
    return answer


async def get_config(registry: Registry, request: Request) -> Any:
    subject = request.path_params.get("subject")
    if subject is None:
        return {"compatibilityLevel": registry.level(None)}
    return {"compatibilityLevel": registry.subject_level(subject,
                                                         _flag(request, "defaultToGlobal"))}


async def put_config(registry: Registry, request: Request) -> Any:
    return {"compatibility": await registry.set_level(request.path_params.get("subject"),
                                                      await _body(request))}


async def delete_config(registry: Registry, request: Request) -> Any:
    return {"compatibilityLevel": await registry.delete_level(
        request.path_params.get("subject"))}


async def get_mode(registry: Registry, request: Request) -> Any:
    subject = request.path_params.get("subject")
    if subject is None:
        return {"mode": registry.mode(None)}
    return {"mode": registry.subject_mode(subject, _flag(request, "defaultToGlobal"))}


async def put_mode(registry: Registry, request: Request) -> Any:
    return {"mode": await registry.set_mode(request.path_params.get("subject"),
                                            await _body(request), _flag(request, "force"))}


async def delete_mode(registry: Registry, request: Request) -> Any:
    return {"mode": await registry.delete_mode(request.path_params["subject"])}


class RawSchema(str):
    """A route's answer that is the schema text itself, not JSON around it."""


# --- the app --------------------------------------------------------------------------------------


ROUTES: list[tuple[str, str, Handler]] = [
    ("/", "GET", root),
    ("/schemas", "GET", schemas),
    ("/schemas/types", "GET", schema_types),
    ("/schemas/ids/{id}", "GET", schema_by_id),
    ("/schemas/ids/{id}/schema", "GET", schema_text_by_id),
    ("/schemas/ids/{id}/subjects", "GET", schema_subjects),
    ("/schemas/ids/{id}/versions", "GET", schema_versions),
    ("/subjects", "GET", subjects),
    ("/subjects/{subject}", "POST", lookup),
    ("/subjects/{subject}", "DELETE", delete_subject),
    ("/subjects/{subject}/versions", "GET", versions),
    ("/subjects/{subject}/versions", "POST", register),
    ("/subjects/{subject}/versions/{version}", "GET", version),
    ("/subjects/{subject}/versions/{version}", "DELETE", delete_version),
    ("/subjects/{subject}/versions/{version}/schema", "GET", version_schema),
    ("/subjects/{subject}/versions/{version}/referencedby", "GET", referenced_by),
    ("/compatibility/subjects/{subject}/versions", "POST", check_versions),
    ("/compatibility/subjects/{subject}/versions/{version}", "POST", check_version),
    ("/config", "GET", get_config),
    ("/config", "PUT", put_config),
    ("/config", "DELETE", delete_config),
    ("/config/{subject}", "GET", get_config),
    ("/config/{subject}", "PUT", put_config),
    ("/config/{subject}", "DELETE", delete_config),
    ("/mode", "GET", get_mode),
    ("/mode", "PUT", put_mode),
    ("/mode/{subject}", "GET", get_mode),
    ("/mode/{subject}", "PUT", put_mode),
    ("/mode/{subject}", "DELETE", delete_mode),
]


def _endpoint(registry: Registry, handlers: dict[str, Handler]
              ) -> Callable[[Request], Awaitable[Response]]:
    """One path's routes, chosen by method (Starlette answers a path once, whatever route has
    the method)."""

    async def endpoint(request: Request) -> Response:
        handler = handlers["GET" if request.method == "HEAD" else request.method]
        try:
            answer = await handler(registry, request)
        except RegistryError as exc:
            return RegistryResponse(exc.body(), exc.status)
        if isinstance(answer, RawSchema):
            return Response(str(answer), media_type=CONTENT_TYPE)
        return RegistryResponse(answer)

    return endpoint


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return RegistryResponse({"error_code": exc.status_code,
                             "message": f"HTTP {exc.status_code} {exc.detail}"}, exc.status_code)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("schema registry: %s %s failed", request.method, request.url.path, exc_info=exc)
    return RegistryResponse({"error_code": 50001, "message": f"Error in the backend data store "
                             f"- {type(exc).__name__}: {exc}"}, 500)


def create_app(registry: Registry) -> Starlette:
    by_path: dict[str, dict[str, Handler]] = {}
    for path, method, handler in ROUTES:
        by_path.setdefault(path, {})[method] = handler
    routes = [Route(path, _endpoint(registry, handlers), methods=list(handlers))
              for path, handlers in by_path.items()]
    return Starlette(routes=routes, exception_handlers={HTTPException: _http_error,
                                                        Exception: _server_error})
