"""DescribeAcls (29), CreateAcls (30), DeleteAcls (31): the ACLs (KIP-140, prefixed: KIP-290).

Describing needs DESCRIBE on the cluster, creating and deleting ALTER (as Kafka's
AclControlManager); without an authorizer (authorizer_class_name empty) every one is answered
SECURITY_DISABLED, as Kafka does. Versions 0-3 (confluent-kafka's AdminClient sends 1 or 2);
v0 knows only LITERAL patterns.
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

from kafka.protocol.api_key import ApiKey

from ...errors import ErrorCode, KafkaError
from ...protocol.codec import RequestHeader, response_class
from .. import ops
from ..acls import (
    CLUSTER_NAME,
    AclBinding,
    AclFilter,
    AclOperation,
    AclPermissionType,
    PatternType,
    ResourceType,
)
from ..context import Api, BrokerContext, authorized

_DISABLED = "No Authorizer is configured (authorizer_class_name)"


def _enum(kind: type[Any], value: int) -> Any:
    """Kafka's enums read UNKNOWN for a code they do not know."""
    try:
        return kind(value)
    except ValueError:
        return kind.UNKNOWN


def _refusal(ctx: BrokerContext, operation: AclOperation) -> tuple[ErrorCode, str] | None:
    if ctx.authorizer is None:
        return ErrorCode.SECURITY_DISABLED, _DISABLED
    if not authorized(ctx, operation, ResourceType.CLUSTER, CLUSTER_NAME):
        return ErrorCode.CLUSTER_AUTHORIZATION_FAILED, "Cluster authorization failed."
    return None


def _filter(version: int, f: Any) -> AclFilter:
    pattern = PatternType.LITERAL if version == 0 else _enum(PatternType, f.pattern_type_filter)
    return AclFilter(_enum(ResourceType, f.resource_type_filter), f.resource_name_filter,
                     pattern, f.principal_filter, f.host_filter,
                     _enum(AclOperation, f.operation), _enum(AclPermissionType,
                                                              f.permission_type))


def _invalid_filter(acl_filter: AclFilter) -> str | None:
    kinds = (acl_filter.resource_type, acl_filter.pattern_type, acl_filter.operation,
             acl_filter.permission)
    if any(kind.name == "UNKNOWN" for kind in kinds):
        return "the filter has an unknown resource, pattern, operation or permission type"
    return None


async def handle_describe(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    cls = response_class(ApiKey.DescribeAcls, header.api_version)
    acl_filter = _filter(header.api_version, request)
    refusal = _refusal(ctx, AclOperation.DESCRIBE)
    invalid = _invalid_filter(acl_filter)
    if refusal or invalid:
        code, message = refusal or (ErrorCode.INVALID_REQUEST, invalid)
        return cls(throttle_time_ms=0, error_code=code, error_message=message, resources=[])
    assert ctx.authorizer is not None
    resource, description = cls.DescribeAclsResource, cls.DescribeAclsResource.AclDescription
    grouped = groupby(ctx.authorizer.matching(acl_filter),
                      key=lambda acl: (acl.resource_type, acl.name, acl.pattern_type))
    return cls(throttle_time_ms=0, error_code=0, error_message=None, resources=[
        resource(resource_type=rtype, resource_name=name, pattern_type=pattern, acls=[
            description(principal=acl.principal, host=acl.host, operation=acl.operation,
                        permission_type=acl.permission) for acl in acls])
        for (rtype, name, pattern), acls in grouped])


def _binding(version: int, creation: Any) -> AclBinding:
    pattern = PatternType.LITERAL if version == 0 else _enum(PatternType,
                                                              creation.resource_pattern_type)
    return AclBinding(_enum(ResourceType, creation.resource_type), creation.resource_name,
                      pattern, creation.principal, creation.host,
                      _enum(AclOperation, creation.operation),
                      _enum(AclPermissionType, creation.permission_type))


async def handle_create(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    """The valid creations are kept together, in one durable write; each invalid one is
    answered INVALID_REQUEST with the reason."""
    cls = response_class(ApiKey.CreateAcls, header.api_version)
    refusal = _refusal(ctx, AclOperation.ALTER)
    bindings = [_binding(header.api_version, c) for c in request.creations]
    errors: list[tuple[int, str | None]] = [
        refusal or ((ErrorCode.INVALID_REQUEST, why) if (why := b.invalid()) else (0, None))
        for b in bindings]
    try:
        ops.change_acls(ctx, add=[binding for binding, (code, _) in
                                  zip(bindings, errors, strict=True) if not code])
    except KafkaError as exc:
        errors = [(code, message) if code else (exc.code, str(exc)) for code, message in errors]
    return cls(throttle_time_ms=0, results=[
        cls.AclCreationResult(error_code=code, error_message=message)
        for code, message in errors])


async def handle_delete(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    """Every ACL any filter matches goes, in one durable write; each filter lists its own."""
    cls = response_class(ApiKey.DeleteAcls, header.api_version)
    result = cls.DeleteAclsFilterResult
    refusal = _refusal(ctx, AclOperation.ALTER)
    filters = [_filter(header.api_version, f) for f in request.filters]
    if refusal:
        return cls(throttle_time_ms=0, filter_results=[
            result(error_code=refusal[0], error_message=refusal[1], matching_acls=[])
            for _ in filters])
    assert ctx.authorizer is not None
    matched = [ctx.authorizer.matching(f) if not _invalid_filter(f) else None for f in filters]
    code, message = 0, None
    try:
        ops.change_acls(ctx, remove={acl for acls in matched for acl in acls or ()})
    except KafkaError as exc:
        code, message = exc.code, str(exc)
    matching = result.DeleteAclsMatchingAcl
    return cls(throttle_time_ms=0, filter_results=[
        result(error_code=ErrorCode.INVALID_REQUEST, error_message=_invalid_filter(f),
               matching_acls=[]) if acls is None else
        result(error_code=code, error_message=message, matching_acls=[
            matching(error_code=0, error_message=None, resource_type=acl.resource_type,
                     resource_name=acl.name, pattern_type=acl.pattern_type,
                     principal=acl.principal, host=acl.host, operation=acl.operation,
                     permission_type=acl.permission) for acl in acls])
        for f, acls in zip(filters, matched, strict=True)])


APIS = (
    Api(ApiKey.DescribeAcls, 0, 3, handle_describe),
    Api(ApiKey.CreateAcls, 0, 3, handle_create),
    Api(ApiKey.DeleteAcls, 0, 3, handle_delete),
)
