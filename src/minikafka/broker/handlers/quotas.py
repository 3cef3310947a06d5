"""DescribeClientQuotas (48), AlterClientQuotas (49): client quotas (KIP-546).

Entities are `client-id` ones, named or the default (a null name); user and ip entities need
authentication or listeners this broker does not have, so filters on them match nothing and
changes to them are refused (INVALID_REQUEST), as are unknown keys, as Kafka refuses them.
"""

from __future__ import annotations

from typing import Any

from kafka.protocol.api_key import ApiKey

from ...errors import KafkaError
from ...protocol.codec import RequestHeader, response_class
from .. import ops
from ..acls import CLUSTER_NAME, AclOperation, ResourceType
from ..context import Api, BrokerContext, authorize
from ..quotas import CLIENT_ID, KNOWN_ENTITY_TYPES, Entity, invalid

EXACT, DEFAULT, ANY = 0, 1, 2  # DescribeClientQuotas match types


def _component_names(components: list[Any]) -> list[Entity] | None:
    """The client-id names the filter admits (None: any); [] when it asks for entities of
    another type, which never exist here."""
    seen = set()
    names: list[Entity] | None = None
    for c in components:
        if c.entity_type not in KNOWN_ENTITY_TYPES:
            raise invalid(f"unknown entity type {c.entity_type!r}")
        if c.entity_type in seen:
            raise invalid(f"entity type {c.entity_type} appears twice in the filter")
        seen.add(c.entity_type)
        if c.match_type == EXACT and c.match is None:
            raise invalid("an exact match needs a name")
        if c.match_type not in (EXACT, DEFAULT, ANY):
            raise invalid(f"unknown match type {c.match_type}")
        if c.entity_type != CLIENT_ID:
            return []
        if c.match_type == EXACT:
            names = [c.match]
        elif c.match_type == DEFAULT:
            names = [None]
    return names


async def handle_describe(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    cls = response_class(ApiKey.DescribeClientQuotas, header.api_version)
    try:
        authorize(ctx, AclOperation.DESCRIBE_CONFIGS, ResourceType.CLUSTER, CLUSTER_NAME)
        names = _component_names(request.components)
    except KafkaError as exc:
        return cls(throttle_time_ms=0, error_code=exc.code, error_message=str(exc),
                   entries=None)
    if request.strict and not request.components:
        names = []  # entities with no type at all
    entry, entity, value = cls.EntryData, cls.EntryData.EntityData, cls.EntryData.ValueData
    return cls(throttle_time_ms=0, error_code=0, error_message=None, entries=[
        entry(entity=[entity(entity_type=CLIENT_ID, entity_name=name)],
              values=[value(key=key, value=v) for key, v in sorted(values.items())])
        for name, values in ctx.quotas.describe(names).items()])


def _alter_entry(ctx: BrokerContext, entry: Any, validate_only: bool) -> None:
    types = [e.entity_type for e in entry.entity]
    if types != [CLIENT_ID]:
        raise invalid(f"quotas are set on one client-id entity here (no authentication, so no "
                      f"user entities), not on {types}")
    changes: dict[str, float | None] = {}
    for op in entry.ops:
        if op.key in changes:
            raise invalid(f"{op.key} is changed twice")
        changes[op.key] = None if op.remove else op.value
    ops.alter_client_quotas(ctx, entry.entity[0].entity_name, changes, validate_only)


async def handle_alter(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    cls = response_class(ApiKey.AlterClientQuotas, header.api_version)
    results = []
    for entry in request.entries:
        error, message = 0, None
        try:
            _alter_entry(ctx, entry, request.validate_only)
        except KafkaError as exc:
            error, message = exc.code, str(exc)
        results.append(cls.EntryData(error_code=error, error_message=message, entity=[
            cls.EntryData.EntityData(entity_type=e.entity_type, entity_name=e.entity_name)
            for e in entry.entity]))
    return cls(throttle_time_ms=0, entries=results)


APIS = (
    Api(ApiKey.DescribeClientQuotas, 0, 1, handle_describe),
    Api(ApiKey.AlterClientQuotas, 0, 1, handle_alter),
)
