"""Request handlers, one module per API family (kfake-style), each exporting `APIS`.

To serve more APIs, write a module with an `APIS` tuple of
`Api(key, min_version, max_version, handler)` and add it to `FAMILIES`. A handler decodes its
request, calls the service layer (`broker/ops.py`, or a service on the context such as
`ctx.groups`) and encodes the answer; state that outlives a request is a typed field of the
`BrokerContext`. An Api whose `answers_now(ctx, header, request)` says a request will not wait
(Produce with acks<=1, ApiVersions, Metadata that creates nothing) is run by the connection
without a task of its own; its handler must then not await anything for that request (an Api
may give its `handle_now`, a plain function, to run then instead: no coroutine to run).
"""

from __future__ import annotations

from types import ModuleType

from ..context import Api
from . import (
    acls,
    api_versions,
    configs,
    fetch,
    groups,
    list_offsets,
    metadata,
    produce,
    producers,
    quotas,
    security,
    topics,
    transactions,
)

FAMILIES: tuple[ModuleType, ...] = (
    api_versions,
    metadata,
    produce,
    fetch,
    list_offsets,
    topics,
    configs,
    transactions,
    producers,
    groups,
    quotas,
    security,
    acls,
)


def build_registry(families: tuple[ModuleType, ...] = FAMILIES) -> dict[int, Api]:
    """API key -> Api; a key served by two families is a programming error."""
    registry: dict[int, Api] = {}
    for module in families:
        for api in module.APIS:
            if api.key in registry:
                raise ValueError(f"API key {api.key} is registered twice ({module.__name__})")
            registry[api.key] = api
    return registry
