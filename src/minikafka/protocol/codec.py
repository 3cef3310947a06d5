"""Sans-I/O Kafka codec: a frame's bytes in, (header, request object) out; a response object in,
the frame's bytes out.

Message bodies use kafka-python's classes, which are generated from Kafka's published JSON
schemas; tests/protocol/test_golden.py pins the bytes they write, so an upgrade that changes the
wire fails there. The classes are found through the names kafka-python's packages export. This
module is the only place that touches them directly, so a swap to our own generator would stay
local. The request header is parsed by hand: it is tiny, read on every request, and
kafka-python's header path is the slow one.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

import kafka.protocol.admin
import kafka.protocol.consumer
import kafka.protocol.metadata
import kafka.protocol.producer
import kafka.protocol.sasl
from kafka.protocol.api_key import ApiKey
from kafka.protocol.api_message import ApiMessage

from ..errors import ErrorCode
from .primitives import EMPTY_TAGS, INT32, MalformedError, skip_tagged_fields

# The response header is v0 (no tagged fields) for ApiVersions at every version (KIP-511), so a
# client can always read the answer, even when it asked with a version we do not know.
_HEADER_V0_ALWAYS = {ApiKey.ApiVersions}

# The packages whose `__all__` lists kafka-python's message classes (its public API).
_MESSAGE_MODULES = (kafka.protocol.admin, kafka.protocol.consumer, kafka.protocol.metadata,
                    kafka.protocol.producer, kafka.protocol.sasl)


def _message_classes(requests: bool) -> dict[int, type[ApiMessage]]:
    """Request (or response) classes by API key, from the names kafka-python exports."""
    exported = [getattr(module, name) for module in _MESSAGE_MODULES for name in module.__all__]
    messages: list[type[ApiMessage]] = [
        cls for cls in exported if isinstance(cls, type) and issubclass(cls, ApiMessage)]
    return {cls.API_KEY: cls for cls in messages if cls.is_request() == requests}


REQUESTS = _message_classes(requests=True)
RESPONSES = _message_classes(requests=False)
# Per API key: the highest version we decode, and the first flexible one (past the highest if
# none is). Read on every request, so looked up once here: kafka-python's class properties
# cost ~0.3 µs a call.
_VERSIONS: dict[int, tuple[int, int]] = {
    key: (cls.max_version, next((v for v in range(cls.max_version + 1)
                                 if cls.flexible_version_q(v)), 1 << 15))
    for key, cls in REQUESTS.items()}
_HEADER = struct.Struct(">hhih")  # api key, api version, correlation id, client id length


class RequestHeader(NamedTuple):
    """Immutable; a NamedTuple because one is built per request and a frozen dataclass's
    constructor costs three times as much."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


def is_flexible(api_key: int, api_version: int) -> bool:
    """Whether this API version uses compact strings and tagged fields (header v2 / v1)."""
    versions = _VERSIONS.get(api_key)
    return versions is not None and versions[1] <= api_version


def known_version(api_key: int, api_version: int) -> bool:
    """Whether the codec can decode this request (its schema knows the version)."""
    versions = _VERSIONS.get(api_key)
    return versions is not None and 0 <= api_version <= versions[0]


def parse_header(frame: bytes | memoryview) -> tuple[RequestHeader, int]:
    """Read the request header v1/v2; return it and the body's position in the frame.

    Tagged fields of a v2 header are skipped only when the codec knows the version is flexible;
    for unknown versions the body is never decoded, so the exact position does not matter.
    """
    if len(frame) < 10:
        raise MalformedError(f"request header truncated: {len(frame)} bytes")
    api_key, api_version, correlation_id, length = _HEADER.unpack_from(frame)
    pos = 10
    client_id = None
    if length >= 0:
        if pos + length > len(frame):
            raise MalformedError("client id runs past the end of the frame")
        client_id = str(frame[pos : pos + length], "utf-8", "replace")
        pos += length
    elif length != -1:
        raise MalformedError(f"negative client id length {length}")
    # tuple.__new__: a named tuple's own __new__ is interpreted code, ~0.3 µs per request here
    header: RequestHeader = tuple.__new__(RequestHeader,
                                          (api_key, api_version, correlation_id, client_id))
    versions = _VERSIONS.get(api_key)
    if versions is not None and versions[1] <= api_version <= versions[0]:  # known, flexible
        pos = skip_tagged_fields(frame, pos)
    return header, pos


def decode_request(header: RequestHeader, frame: bytes | memoryview, pos: int) -> Any:
    """Decode a request body at a version the codec knows; MalformedError on bad bytes."""
    cls = REQUESTS[header.api_key]
    view = memoryview(frame)[pos:]
    try:
        request = cls.decode(view, version=header.api_version)
    except MalformedError:
        raise
    except Exception as exc:  # the generated decoders raise struct.error, IndexError, ...
        raise MalformedError(
            f"cannot decode {cls.__name__} v{header.api_version}: {type(exc).__name__}: {exc}"
        ) from None
    null = _null_field(cls._struct, request, header.api_version)
    if null is not None:
        raise MalformedError(f"{cls.__name__} v{header.api_version}: null {null}, a field that "
                             "cannot be null")
    return request


# What may arrive as null, per struct and version: (attribute, nullable, kind, inner struct).
_SIMPLE, _STRUCT, _STRUCT_ARRAY, _ARRAY = range(4)
_Check = tuple[str, bool, int, Any]
_CHECKS: dict[tuple[int, int], tuple[_Check, ...]] = {}
_NEVER_NULL = {"int8", "int16", "int32", "int64", "uint16", "uint32", "float64", "bool", "uuid"}


def _checks(struct: Any, version: int) -> tuple[_Check, ...]:
    key = (id(struct), version)
    found = _CHECKS.get(key)
    if found is None:
        checks = []
        for field in struct.fields.values():
            if not field.for_version_q(version) or field.tagged_field_q(version):
                continue
            nullable = field.nullable_for_version_q(version)
            if field.is_struct_array():
                checks.append((field.name, nullable, _STRUCT_ARRAY, field.array_of))
            elif field.is_array():
                if nullable and field.array_of.type_str in _NEVER_NULL:
                    continue
                checks.append((field.name, nullable, _ARRAY, field.array_of))
            elif field.is_struct():
                checks.append((field.name, nullable, _STRUCT, field))
            elif not nullable and field.type_str not in _NEVER_NULL:
                checks.append((field.name, False, _SIMPLE, None))
        found = _CHECKS[key] = tuple(checks)
    return found


def _null_field(struct: Any, value: Any, version: int, path: str = "") -> str | None:
    """The path of the first field holding null where the schema allows none, if any.

    kafka-python decodes a length of -1 as None whatever the schema says, and Kafka's own
    parser refuses it; checking here, once, spares every handler the TypeError. The fields
    to look at are worked out once per struct and version."""
    for name, nullable, kind, inner in _checks(struct, version):
        item = getattr(value, name)
        if item is None:
            if not nullable:
                return path + name
        elif kind == _STRUCT_ARRAY:
            for element in item:
                found = _null_field(inner, element, version, f"{path}{name}[].")
                if found is not None:
                    return found
        elif kind == _ARRAY:
            if None in item and not inner.nullable_for_version_q(version):
                return f"{path}{name}[]"
        elif kind == _STRUCT:
            found = _null_field(inner, item, version, f"{path}{name}.")
            if found is not None:
                return found
    return None


def response_class(api_key: int, api_version: int) -> type[ApiMessage]:
    """The kafka-python response class to build an answer with (`cls(field=..., ...)`)."""
    cls: type[ApiMessage] = RESPONSES[api_key][api_version]
    return cls


def response_header(header: RequestHeader) -> bytes:
    """Response header v0 (correlation id) or v1 (plus empty tagged fields)."""
    flexible = header.api_key not in _HEADER_V0_ALWAYS and is_flexible(
        header.api_key, header.api_version)
    return INT32.pack(header.correlation_id) + (EMPTY_TAGS if flexible else b"")


def encode_response(header: RequestHeader, response: ApiMessage, version: int | None = None
                    ) -> bytes:
    """Frame a response: size, header, body at the request's version (or `version`)."""
    body = response.encode(version=header.api_version if version is None else version)
    head = response_header(header)
    return b"".join((INT32.pack(len(head) + len(body)), head, body))  # body is a bytearray


def unsupported_api_versions(header: RequestHeader, served: dict[int, tuple[int, int]]
                             ) -> bytes:
    """ApiVersions at a version above ours: a v0 body with UNSUPPORTED_VERSION and our ranges,
    so the client can retry at a version we speak (KIP-511)."""
    cls = RESPONSES[ApiKey.ApiVersions]
    body = cls[0](
        error_code=ErrorCode.UNSUPPORTED_VERSION,
        api_keys=[cls.ApiVersion(api_key=k, min_version=lo, max_version=hi)
                  for k, (lo, hi) in sorted(served.items())],
    )
    return encode_response(header, body, version=0)
