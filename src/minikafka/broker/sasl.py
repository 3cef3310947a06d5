"""SASL on one connection (KIP-43, KIP-152, KIP-368), as Kafka's SaslServerAuthenticator.

A connection on a SASL_PLAINTEXT or SASL_SSL listener starts unauthenticated: it is served
ApiVersions, SaslHandshake (which picks the mechanism) and SaslAuthenticate (which carries the
mechanism's tokens) one request at a time, and closed on anything else. When the exchange
succeeds the connection's principal is `User:<name>`; when it fails the client is answered
SASL_AUTHENTICATION_FAILED with a message, the broker logs one line, and the connection closes.

Mechanisms: PLAIN (RFC 4616) and SCRAM-SHA-256/512 (RFC 5802, RFC 7677), both checked against
the SCRAM credentials (credentials.py). The client learns only that the credentials were
invalid; the log line says why (no such user, wrong password).

Re-authentication (KIP-368): with `connections.max.reauth.ms` set, a session lasts that long
(SaslAuthenticate v1+ tells the client); the client re-authenticates on the same connection
with the same mechanism and principal, and a connection whose session expired is closed at its
next other request. A SaslHandshake v0 client sends the tokens bare, size-prefixed without a
Kafka header (Kafka 0.10's way); `raw_tokens` is set meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import os
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

from kafka.protocol.api_key import ApiKey

from ..errors import ErrorCode, KafkaError
from .context import CloseConnection
from .credentials import CredentialStore
from .scram import MECHANISMS, ScramCredential, ScramMechanism

log = logging.getLogger("minikafka.broker")

ANONYMOUS = "User:ANONYMOUS"
# What an unauthenticated connection may ask (anything else closes it, as in Kafka).
AUTHENTICATION_APIS = frozenset({ApiKey.ApiVersions, ApiKey.SaslHandshake,
                                 ApiKey.SaslAuthenticate})


class AuthenticationFailed(Exception):
    """The exchange failed: `str()` is for the broker's log, `client_message` for the client."""

    def __init__(self, reason: str, client_message: str) -> None:
        super().__init__(reason)
        self.client_message = client_message


class Exchange(Protocol):
    """One mechanism's server side: `step` takes the client's token and returns the answer;
    `user` is set once the client is proven to be them."""

    user: str | None

    def step(self, token: bytes) -> bytes: ...


class PlainExchange:
    """RFC 4616: one message, `authzid NUL authcid NUL password`."""

    def __init__(self, store: CredentialStore) -> None:
        self._store = store
        self.user: str | None = None

    def step(self, token: bytes) -> bytes:
        parts = token.decode("utf-8", "replace").split("\0")
        if len(parts) != 3 or not parts[1]:
            raise AuthenticationFailed("malformed PLAIN message",
                                       "Invalid SASL/PLAIN response: expected 3 tokens")
        authzid, user, password = parts
        if authzid and authzid != user:
            raise AuthenticationFailed(
                f"authorization id {authzid!r} differs from user {user!r}",
                "Authentication failed: Client requested an authorization id that is "
                "different from username")
        if not self._store.check_plain(user, password):
            raise _invalid("PLAIN", f"wrong password or no credentials for user {user!r}")
        self.user = user
        return b""


_CLIENT_FIRST = re.compile(r"(?P<gs2>[ny],(?:a=(?P<authzid>[^,]*))?,)"
                           r"(?P<bare>n=(?P<user>[^,]*),r=(?P<nonce>[^,]+)(?:,.*)?)")
_CLIENT_FINAL = re.compile(r"(?P<without_proof>c=(?P<binding>[^,]*),r=(?P<nonce>[^,]+)"
                           r"(?:,[^p][^,]*)*),p=(?P<proof>[^,]+)")


class ScramExchange:
    """RFC 5802's server: client-first -> server-first (nonce, salt, iterations); client-final
    (proof) -> server-final (signature), or a failure."""

    def __init__(self, store: CredentialStore, mechanism: ScramMechanism) -> None:
        self._store = store
        self._mechanism = mechanism
        self.user: str | None = None
        self._pending: tuple[str, ScramCredential, str, str, str] | None = None

    def step(self, token: bytes) -> bytes:
        text = token.decode("utf-8", "replace")
        if self._pending is None:
            return self._first(text)
        return self._final(text, *self._pending)

    def _first(self, text: str) -> bytes:
        name = self._mechanism.name
        found = _CLIENT_FIRST.fullmatch(text)
        if found is None:
            raise _invalid(name, "malformed client-first message")
        user = found["user"].replace("=2C", ",").replace("=3D", "=")
        if found["authzid"] and found["authzid"] != user:
            raise _invalid(name, f"authorization id {found['authzid']!r} differs from "
                           f"user {user!r}")
        credential = self._store.get(user, self._mechanism)
        if credential is None:
            raise _invalid(name, f"no {name} credentials for user {user!r}")
        nonce = found["nonce"] + base64.b64encode(os.urandom(18)).decode()
        server_first = (f"r={nonce},s={base64.b64encode(credential.salt).decode()},"
                        f"i={credential.iterations}")
        self._pending = (user, credential, found["gs2"], found["bare"] + "," + server_first,
                         nonce)
        return server_first.encode()

    def _final(self, text: str, user: str, credential: ScramCredential, gs2: str,
               auth_start: str, nonce: str) -> bytes:
        name, mechanism = self._mechanism.name, self._mechanism
        found = _CLIENT_FINAL.fullmatch(text)
        if found is None:
            raise _invalid(name, "malformed client-final message")
        # endswith, as Kafka checks: older librdkafka sends the client nonce twice
        if not found["nonce"].endswith(nonce) or \
                found["binding"] != base64.b64encode(gs2.encode()).decode():
            raise _invalid(name, "nonce or channel binding differ from the first messages")
        auth_message = f"{auth_start},{found['without_proof']}".encode()
        try:
            proof = base64.b64decode(found["proof"], validate=True)
        except ValueError:
            raise _invalid(name, "proof is not base64") from None
        signature = mechanism.hmac(credential.stored_key, auth_message)
        if len(proof) != len(signature):
            raise _invalid(name, "proof of the wrong length")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(mechanism.digest(client_key), credential.stored_key):
            raise _invalid(name, f"wrong password for user {user!r}")
        self.user = user
        server_signature = mechanism.hmac(credential.server_key, auth_message)
        return b"v=" + base64.b64encode(server_signature)


def _invalid(mechanism: str, reason: str) -> AuthenticationFailed:
    """What Kafka tells the client whatever went wrong with the credentials."""
    return AuthenticationFailed(reason, "Authentication failed during authentication due to "
                                f"invalid credentials with SASL mechanism {mechanism}")


def new_exchange(mechanism: str, store: CredentialStore) -> Exchange:
    if mechanism == "PLAIN":
        return PlainExchange(store)
    return ScramExchange(store, MECHANISMS[mechanism])


@dataclass(slots=True)
class Session:
    """A connection's security state, shared by the connection and its SASL handlers."""

    peer: str
    listener: str
    sasl: bool  # the listener's protocol is SASL_*: authenticate before anything else
    principal: str = ANONYMOUS
    authenticated: bool = False
    mechanism: str | None = None  # the one the last SaslHandshake picked
    exchange: Exchange | None = None  # between SaslHandshake and the exchange's end
    raw_tokens: bool = False  # after SaslHandshake v0: bare tokens until the exchange ends
    expires_at: float | None = None  # time.monotonic() when the session ends (KIP-368)
    closing: bool = False  # answer the request being handled, then close
    on_authenticated: Callable[[Session], None] = field(default=lambda session: None)

    def __post_init__(self) -> None:
        self.authenticated = not self.sasl

    def admit(self, api_key: int) -> None:
        """Raise CloseConnection for a request this connection may not make now."""
        if api_key in AUTHENTICATION_APIS:
            return
        if not self.authenticated:
            raise CloseConnection(f"{ApiKey(api_key).name} request before SASL authentication "
                                  f"(listener {self.listener})")
        if self.expires_at is not None and time.monotonic() >= self.expires_at:
            raise CloseConnection("SASL session expired without re-authentication "
                                  "(connections.max.reauth.ms)")

    def handshake(self, mechanism: str, version: int, enabled: tuple[str, ...],
                  store: CredentialStore) -> ErrorCode:
        """SaslHandshake: start an exchange (or a re-authentication) with `mechanism`."""
        if not self.sasl or self.exchange is not None or (self.authenticated and version == 0):
            self.closing = True
            return ErrorCode.ILLEGAL_SASL_STATE
        if mechanism not in enabled or (self.authenticated and mechanism != self.mechanism):
            self.closing = True
            log.info("failed authentication with %s (listener %s): mechanism %r is not "
                     "enabled%s", self.peer, self.listener, mechanism,
                     " for re-authentication" if self.authenticated else "")
            return ErrorCode.UNSUPPORTED_SASL_MECHANISM
        self.mechanism = mechanism
        self.exchange = new_exchange(mechanism, store)
        self.raw_tokens = version == 0
        return ErrorCode.NONE

    def current(self) -> Exchange:
        """The exchange a SaslHandshake started; ILLEGAL_SASL_STATE without one."""
        if self.exchange is None:
            self.closing = True
            raise KafkaError("SaslAuthenticate without a SaslHandshake first",
                             ErrorCode.ILLEGAL_SASL_STATE)
        return self.exchange

    def failed(self, exc: AuthenticationFailed) -> None:
        log.info("failed authentication with %s (listener %s, %s): %s", self.peer,
                 self.listener, self.mechanism, exc)
        self.exchange, self.raw_tokens, self.closing = None, False, True

    def finish(self, exchange: Exchange, reauth_ms: int) -> None:
        """The exchange ended well: the connection is `User:<name>` for `reauth_ms` (0: for
        good). Re-authentication may not change the principal."""
        assert exchange.user is not None
        principal = f"User:{exchange.user}"
        if self.authenticated and principal != self.principal:
            raise AuthenticationFailed(
                f"re-authentication as {principal} on a connection of {self.principal}",
                f"Cannot change principals during re-authentication from {self.principal}: "
                f"{principal}")
        log.debug("%s %s as %s with %s", "re-authenticated" if self.authenticated
                  else "authenticated", self.peer, principal, self.mechanism)
        self.principal, self.authenticated = principal, True
        self.exchange, self.raw_tokens = None, False
        self.expires_at = time.monotonic() + reauth_ms / 1000 if reauth_ms > 0 else None
        self.on_authenticated(self)


# The connection's security state (set per connection), for the SASL handlers.
session: ContextVar[Session] = ContextVar("session")


async def authenticate(session: Session, token: bytes, reauth_ms: int) -> bytes:
    """Answer one token of the session's exchange (in a worker thread: PLAIN's PBKDF2 takes
    milliseconds); AuthenticationFailed, logged and the session closing, when it fails."""
    exchange = session.current()
    try:
        reply = await asyncio.to_thread(exchange.step, token)
        if exchange.user is not None:
            session.finish(exchange, reauth_ms)
    except AuthenticationFailed as exc:
        session.failed(exc)
        raise
    return reply
