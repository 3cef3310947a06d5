"""What every request handler (and `ops`, and the console) sees: the log, the settings, and the
broker's shared services, each a typed field.

A handler is `async def handle(ctx, header, request) -> Answer`, registered with the versions it
serves as an `Api` in its module's `APIS`; `handlers/__init__.py` lists the modules.

Compiled (mypyc): the compiled request path reads the context's fields and makes the ACL check
(`authorized`) on every request, without an interpreted call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from ..errors import ErrorCode, KafkaError
from ..log import LogManager
from ..log.producer_ids import ProducerIdManager
from ..protocol.codec import RequestHeader, decode_request
from ..protocol.fetch import RecordsSlice
from .acls import SUPPORTED, AclOperation, Authorizer, ResourceType
from .appends import AppendNotifier, GroupCommit
from .bounds import ConnectionLimits, RequestBudget
from .config import BrokerConfig
from .credentials import CredentialStore
from .fetch_sessions import FetchSessionCache
from .group_service import GroupService
from .metrics import BrokerMetrics
from .quotas import ClientQuotas
from .transaction_service import TransactionService

# A kafka-python response object, ready-framed pieces (Fetch), or None: send nothing (acks=0).
Answer = Any | list[bytes | RecordsSlice] | None
Handler = Callable[["BrokerContext", RequestHeader, Any], Coroutine[Any, Any, Answer]]
Decoder = Callable[[RequestHeader, bytes, int], Any]  # (header, frame, body position) -> request
# (ctx, header, request) -> True when the handler will answer without waiting for anything
AnswersNow = Callable[["BrokerContext", RequestHeader, Any], bool]
HandlerNow = Callable[["BrokerContext", RequestHeader, Any], Answer]  # a Handler that cannot wait
# What a Poller answers with, once: an Answer, or the exception its handler failed with
Reply = Callable[[Any], None]
# (ctx, header, request, reply): a handler that waits without a task of its own (a long poll
# filed in ctx.appends), calling reply once, at once or later, in the request's context
Poller = Callable[["BrokerContext", RequestHeader, Any, Reply], None]

# The address of the client whose request is being handled (set per connection), for the few
# answers that report it, like DescribeGroups' client host.
client_host: ContextVar[str] = ContextVar("client_host", default="")
# The name of the listener the connection came in on (set per connection): Metadata and
# FindCoordinator answer with that listener's advertised address.
listener: ContextVar[str] = ContextVar("listener", default="")
# Who the connection's client is (set per connection once known): `User:<name>` after SASL,
# `User:<certificate subject>` for a client certificate, else User:ANONYMOUS.
principal: ContextVar[str] = ContextVar("principal", default="User:ANONYMOUS")


@dataclass(frozen=True, slots=True)
class Api:
    """One API key and the versions we serve of it (advertised in ApiVersions)."""

    key: int
    min_version: int
    max_version: int
    handle: Handler
    decode: Decoder = decode_request  # a hand-written one where the schema classes are too slow
    # Set where the handler often cannot wait: the connection then runs it without a task.
    answers_now: AnswersNow | None = None
    # Optional with answers_now: the handler as a plain function, for the requests answers_now
    # passes (no coroutine to make and run to its end)
    handle_now: HandlerNow | None = None
    # Set where the handler mostly waits (Fetch): the connection runs it without a task.
    poll: Poller | None = None


class CloseConnection(Exception):
    """Raised by a handler when Kafka would drop the connection instead of answering."""


@dataclass(slots=True)
class BrokerContext:
    config: BrokerConfig
    log: LogManager
    cluster_id: str
    producer_ids: ProducerIdManager
    groups: GroupService  # the group coordinator and its runtime
    transactions: TransactionService  # the transaction coordinator, its log and clock
    budget: RequestBudget  # queued.max.request.bytes, shared by every connection
    connections: ConnectionLimits  # max.connections, max.connections.per.ip
    credentials: CredentialStore  # SCRAM users, for SASL and the credential APIs
    apis: dict[int, Api] = field(default_factory=dict)
    authorizer: Authorizer | None = None  # ACLs, with authorizer_class_name; None: all allowed
    appends: AppendNotifier = field(default_factory=AppendNotifier)
    commits: GroupCommit = field(default_factory=GroupCommit)
    metrics: BrokerMetrics = field(default_factory=BrokerMetrics)
    quotas: ClientQuotas = field(default_factory=ClientQuotas)  # client quotas (KIP-13, 124)
    fetch_sessions: FetchSessionCache = field(default_factory=FetchSessionCache)  # KIP-227
    stopping: bool = False  # set on shutdown: long polls answer at once
    storage_failing: bool = False  # the last write to the data directory failed (ops)
    topic_changes: asyncio.Lock = field(default_factory=asyncio.Lock)  # topics made one by one
    # The event loop served, as the context is built in it: the hot path reads it here, for
    # asyncio.get_running_loop() makes a getpid system call each time (CPython 3.11).
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)

    @property
    def node_id(self) -> int:
        return self.config.node_id

    @property
    def served_versions(self) -> dict[int, tuple[int, int]]:
        return {key: (api.min_version, api.max_version) for key, api in self.apis.items()}


def authorized(ctx: BrokerContext, operation: AclOperation, resource_type: ResourceType,
               name: str) -> bool:
    """Whether the client whose request is being handled may do `operation` on the resource:
    the one check every handler (and the console, through ops) makes."""
    if ctx.authorizer is None:
        return True
    return ctx.authorizer.authorize(principal.get(), client_host.get(), operation,
                                    resource_type, name)


def authorized_any(ctx: BrokerContext, operation: AclOperation, resource_type: ResourceType
                   ) -> bool:
    """Whether the client may do `operation` on some resource of the type (Kafka's
    authorizeByResourceType: idempotent producers need WRITE on some topic, or
    IDEMPOTENT_WRITE on the cluster)."""
    if ctx.authorizer is None:
        return True
    return ctx.authorizer.authorize_any(principal.get(), client_host.get(), operation,
                                        resource_type)


_REFUSED = {ResourceType.TOPIC: ErrorCode.TOPIC_AUTHORIZATION_FAILED,
            ResourceType.GROUP: ErrorCode.GROUP_AUTHORIZATION_FAILED,
            ResourceType.CLUSTER: ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
            ResourceType.TRANSACTIONAL_ID: ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED}


def refusal(ctx: BrokerContext, operation: AclOperation, resource_type: ResourceType,
            name: str) -> ErrorCode:
    """NONE if the client may do `operation` on the resource, else the resource type's
    *_AUTHORIZATION_FAILED, for answers that carry a code per resource."""
    if authorized(ctx, operation, resource_type, name):
        return ErrorCode.NONE
    return _REFUSED[resource_type]


def authorize(ctx: BrokerContext, operation: AclOperation, resource_type: ResourceType,
              name: str) -> None:
    """Raise the resource type's *_AUTHORIZATION_FAILED unless the client may do `operation`
    on the resource (for ops, whose KafkaErrors handlers already answer)."""
    code = refusal(ctx, operation, resource_type, name)
    if code:
        raise KafkaError(f"{principal.get()} is not authorized to {operation.name} "
                         f"{resource_type.name} {name!r}", code)


def authorized_operations(ctx: BrokerContext, resource_type: ResourceType, name: str
                          ) -> set[int]:
    """The operations the client may do on the resource (Metadata, DescribeCluster)."""
    if ctx.authorizer is None:
        return {int(op) for op in SUPPORTED[resource_type]}
    return ctx.authorizer.operations(principal.get(), client_host.get(), resource_type, name)


def advertised_address(ctx: BrokerContext) -> tuple[str, int]:
    """The address to tell the client whose request is being handled: its listener's."""
    name = listener.get()
    return ctx.config.advertised_for(name) if name else ctx.config.advertised
