"""SaslHandshake (17), SaslAuthenticate (36): SASL on a connection (KIP-43, KIP-152, KIP-368);
DescribeUserScramCredentials (50), AlterUserScramCredentials (51): the SCRAM users (KIP-554).

The exchange itself is sasl.py's; the credentials credentials.py's. Alter takes what Kafka's
clients send, a salt and a salted password computed on the client, so the password never
reaches the broker; the broker keeps the keys derived from them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from kafka.protocol.api_key import ApiKey

from ...errors import ErrorCode, KafkaError
from ...protocol.codec import RequestHeader, response_class
from .. import ops
from ..acls import CLUSTER_NAME, AclOperation, ResourceType
from ..context import Api, BrokerContext, refusal
from ..sasl import AuthenticationFailed, authenticate, session
from ..scram import (
    BY_TYPE,
    MECHANISMS,
    ScramCredential,
    ScramMechanism,
    check_iterations,
    check_mechanisms,
)


async def handle_handshake(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    enabled = check_mechanisms(ctx.config.sasl_enabled_mechanisms)
    error = session.get().handshake(request.mechanism, header.api_version, enabled,
                                    ctx.credentials)
    cls = response_class(ApiKey.SaslHandshake, header.api_version)
    return cls(error_code=error, mechanisms=list(enabled))


async def handle_authenticate(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    cls = response_class(ApiKey.SaslAuthenticate, header.api_version)
    current, reauth_ms = session.get(), ctx.config.connections_max_reauth_ms
    try:
        reply = await authenticate(current, request.auth_bytes, reauth_ms)
    except AuthenticationFailed as exc:
        return cls(error_code=ErrorCode.SASL_AUTHENTICATION_FAILED,
                   error_message=exc.client_message, auth_bytes=b"", session_lifetime_ms=0)
    except KafkaError as exc:
        return cls(error_code=exc.code, error_message=str(exc), auth_bytes=b"",
                   session_lifetime_ms=0)
    done = current.exchange is None
    return cls(error_code=0, error_message=None, auth_bytes=reply,
               session_lifetime_ms=reauth_ms if done else 0)


async def handle_describe(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    cls = response_class(ApiKey.DescribeUserScramCredentials, header.api_version)
    if refused := refusal(ctx, AclOperation.DESCRIBE, ResourceType.CLUSTER, CLUSTER_NAME):
        return cls(throttle_time_ms=0, error_code=refused, error_message=refused.name,
                   results=[])
    result = cls.DescribeUserScramCredentialsResult
    info = result.CredentialInfo
    asked = Counter(user.name for user in request.users or ())
    results = []
    for name in asked or sorted(ctx.credentials.users):
        credentials = ctx.credentials.users.get(name)
        if asked[name] > 1:
            results.append(result(user=name, error_code=ErrorCode.DUPLICATE_RESOURCE,
                                  error_message="Cannot describe SCRAM credentials for the "
                                  "same user twice in a single request", credential_infos=[]))
        elif not credentials:
            results.append(result(user=name, error_code=ErrorCode.RESOURCE_NOT_FOUND,
                                  error_message="Attempt to describe a user credential that "
                                  "does not exist", credential_infos=[]))
        else:
            results.append(result(user=name, error_code=0, error_message=None, credential_infos=[
                info(mechanism=MECHANISMS[mechanism].type,
                     iterations=credential.iterations)
                for mechanism, credential in sorted(credentials.items())]))
    return cls(throttle_time_ms=0, error_code=0, error_message=None, results=results)


def _mechanism(kind: int) -> ScramMechanism:
    if kind not in BY_TYPE:
        raise KafkaError(f"Unknown SCRAM mechanism {kind}", ErrorCode.UNSUPPORTED_SASL_MECHANISM)
    return BY_TYPE[kind]


def _upsert(upsertion: Any) -> tuple[str, ScramMechanism, ScramCredential]:
    mechanism = _mechanism(upsertion.mechanism)
    check_iterations(mechanism, upsertion.iterations)
    if not upsertion.salt or not upsertion.salted_password:
        raise KafkaError("salt and salted password must not be empty",
                         ErrorCode.UNACCEPTABLE_CREDENTIAL)
    return upsertion.name, mechanism, mechanism.credential(
        bytes(upsertion.salted_password), bytes(upsertion.salt), upsertion.iterations)


async def handle_alter(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    """Each user's changes all apply or none do (with an error for that user); the users
    without errors change together, in one durable write."""
    cls = response_class(ApiKey.AlterUserScramCredentials, header.api_version)
    errors: dict[str, KafkaError] = {}
    changes = Counter((c.name, c.mechanism) for c in (*request.deletions, *request.upsertions))
    for (name, _), count in changes.items():
        if count > 1:
            errors[name] = KafkaError("A user credential cannot be altered twice in the same "
                                      "request", ErrorCode.DUPLICATE_RESOURCE)
    upserts, deletions = [], []
    for deletion in request.deletions:
        try:
            mechanism = _mechanism(deletion.mechanism)
            if ctx.credentials.get(deletion.name, mechanism) is None:
                raise KafkaError("Attempt to delete a user credential that does not exist",
                                 ErrorCode.RESOURCE_NOT_FOUND)
            deletions.append((deletion.name, mechanism))
        except KafkaError as exc:
            errors.setdefault(deletion.name, exc)
    for upsertion in request.upsertions:
        try:
            upserts.append(_upsert(upsertion))
        except KafkaError as exc:
            errors.setdefault(upsertion.name, exc)
    for name in {name for name, _ in changes} - errors.keys():
        if not name:
            errors[name] = KafkaError("Username must not be empty",
                                      ErrorCode.UNACCEPTABLE_CREDENTIAL)
    try:
        ops.alter_scram_credentials(ctx, [u for u in upserts if u[0] not in errors],
                                    [d for d in deletions if d[0] not in errors])
    except KafkaError as exc:
        errors.update((name, exc) for name, _ in changes if name not in errors)
    result = cls.AlterUserScramCredentialsResult
    return cls(throttle_time_ms=0, results=[
        result(user=name, error_code=errors[name].code if name in errors else 0,
               error_message=str(errors[name]) if name in errors else None)
        for name in dict.fromkeys(name for name, _ in changes)])


APIS = (
    Api(ApiKey.SaslHandshake, 0, 1, handle_handshake),
    Api(ApiKey.SaslAuthenticate, 0, 2, handle_authenticate),
    Api(ApiKey.DescribeUserScramCredentials, 0, 0, handle_describe),
    Api(ApiKey.AlterUserScramCredentials, 0, 0, handle_alter),
)
