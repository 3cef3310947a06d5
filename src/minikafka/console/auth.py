"""Who is using the console: a login with the broker's SCRAM users, then a session cookie.

When the console listens beyond loopback (or with `--ui-auth login`), every page, API call and
/metrics needs a login: the login form (`/login`) checks the user's password against their SCRAM
credentials, as a SASL PLAIN login does, and sets an HttpOnly, SameSite=Strict session cookie;
scrapers and scripts may send HTTP Basic credentials instead. Each request then runs as that
user's principal (`User:<name>`, else User:ANONYMOUS), so the ACLs that `ops` checks apply to
the console as to any Kafka client.

A pure ASGI middleware (not Starlette's BaseHTTPMiddleware), so the principal set here is the
one the route's task sees.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.requests import Request

from ..broker.config import BrokerConfig
from ..broker.context import BrokerContext, client_host, principal
from . import service

SESSION_COOKIE = "minikafka_session"
SESSION_SECONDS = 8 * 3600
MAX_SESSIONS = 10_000  # the oldest go first past it
OPEN_PATHS = {"/login", "/api/login", "/static/login.js", "/static/style.css"}
ANONYMOUS = "User:ANONYMOUS"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def login_required(config: BrokerConfig) -> bool:
    """`ui_auth`: login always, or (auto) when the console's address is not loopback."""
    if config.ui_auth != "auto":
        return config.ui_auth == "login"
    if config.host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(config.host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return True


class Sessions:
    """Session id -> (user, expiry); in memory: a broker restart logs everyone out."""

    def __init__(self) -> None:
        self._sessions: dict[str, tuple[str, float]] = {}

    def open(self, user: str) -> str:
        if len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = (user, time.monotonic() + SESSION_SECONDS)
        return sid

    def user(self, sid: str) -> str | None:
        found = self._sessions.get(sid)
        if found is None or found[1] < time.monotonic():
            self._sessions.pop(sid, None)
            return None
        return found[0]

    def close(self, sid: str) -> None:
        self._sessions.pop(sid, None)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def session_id(scope: Scope) -> str:
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(_header(scope, b"cookie"))
    morsel = cookie.get(SESSION_COOKIE)
    return morsel.value if morsel else ""


def _basic_user(ctx: BrokerContext, scope: Scope) -> str | None:
    kind, _, encoded = _header(scope, b"authorization").partition(" ")
    if kind.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user if ctx.credentials.check_plain(user, password) else None


class LoginMiddleware:
    """Sets the request's principal; refuses anonymous requests when a login is required
    (401 for the API and /metrics, a redirect to the login form for pages)."""

    def __init__(self, app: App, ctx: BrokerContext, sessions: Sessions) -> None:
        self.app, self.ctx, self.sessions = app, ctx, sessions
        self.required = login_required(ctx.config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        user = self.sessions.user(session_id(scope)) or _basic_user(self.ctx, scope)
        path = scope["path"]
        if user is None and self.required and path not in OPEN_PATHS:
            await _refuse(path, send)
            return
        principal.set(f"User:{user}" if user else ANONYMOUS)
        client_host.set((scope.get("client") or ("", 0))[0])
        await self.app(scope, receive, send)


async def _refuse(path: str, send: Send) -> None:
    if path.startswith("/api/") or path == "/metrics":
        body = json.dumps({"error": "log in first", "code": "UNAUTHORIZED"}).encode()
        headers = [(b"content-type", b"application/json"),
                   (b"www-authenticate", b'Basic realm="minikafka"')]
        status = 401
    else:
        body, headers, status = b"", [(b"location", b"/login")], 303
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Login(BaseModel):
    username: str
    password: str


def add_login(app: FastAPI, ctx: BrokerContext) -> None:
    """The login middleware and its routes: the form, log in and out, who am I."""
    sessions = Sessions()
    app.add_middleware(LoginMiddleware, ctx=ctx, sessions=sessions)
    static = Path(__file__).parent / "static"

    @app.get("/login", include_in_schema=False)
    async def login_page() -> FileResponse:
        return FileResponse(static / "login.html")

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
