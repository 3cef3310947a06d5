"""`consume --value-format / --key-format`: records in a schema registry's wire format (magic
byte 0, 4-byte schema id, payload) decoded with Confluent's deserializers, each with its writer's
schema, and shown as JSON text.

A record that is not in the wire format, or whose schema id or payload does not decode, is shown
raw with a one-line warning on stderr; a registry that cannot be reached is the command's error.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..registry.errors import SCHEMA_NOT_FOUND
from ..registry.formats import to_json, wire_schema_id

if TYPE_CHECKING:
    from ..client import Message

FORMATS = ("avro", "json-schema", "protobuf")


class RegistryUnreachable(ValueError):
    """The registry did not answer (one line for `cli.main`)."""


class RecordDecoder:
    """Decodes the key and/or value of consumed records through the registry at `url`."""

    def __init__(self, url: str, key_format: str | None, value_format: str | None) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self.url = url
        self.client = SchemaRegistryClient({"url": url.rstrip("/")})
        self.fields = {name: self._deserializer(fmt) for name, fmt in
                       (("key", key_format), ("value", value_format)) if fmt}

    def _deserializer(self, fmt: str) -> Callable[[bytes, Any], Any]:
        from confluent_kafka.schema_registry.avro import AvroDeserializer
        from confluent_kafka.schema_registry.json_schema import JSONDeserializer

        if fmt == "avro":
            return AvroDeserializer(self.client)
        if fmt == "json-schema":
            return JSONDeserializer(None, schema_registry_client=self.client)
        return ProtobufWriterDeserializer(self.client)

    def decode(self, message: Message) -> tuple[Message, dict[str, Any]]:
        """`message` with each decoded field replaced by its JSON text, and the decoded data by
        field name (a field shown raw is not there)."""
        from confluent_kafka.serialization import MessageField, SerializationContext

        decoded: dict[str, Any] = {}
        for name, deserialize in self.fields.items():
            data: bytes | None = getattr(message, name)
            if data is None:
                continue
            where = f"{message.topic}[{message.partition}]@{message.offset} {name}"
            if wire_schema_id(data) is None:
                _warn(f"{where}: not in the schema registry's wire format, shown raw")
                continue
            field = MessageField.KEY if name == "key" else MessageField.VALUE
            try:
                decoded[name] = deserialize(data, SerializationContext(message.topic, field))
            except Exception as exc:  # the deserializers raise many kinds
                self._check_reachable(exc)
                _warn(f"{where}: schema id {wire_schema_id(data)}: {_one_line(exc)}, shown raw")
                continue
        if not decoded:
            return message, decoded
        texts = {name: to_json(data).encode() for name, data in decoded.items()}
        return dataclasses.replace(message, key=texts.get("key", message.key),
                                   value=texts.get("value", message.value)), decoded

    def _check_reachable(self, exc: Exception) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryError

        if isinstance(exc, SchemaRegistryError) and exc.error_code == SCHEMA_NOT_FOUND:
            return
        if isinstance(exc, SchemaRegistryError) or type(exc).__module__.startswith("httpx"):
            raise RegistryUnreachable(f"schema registry at {self.url}: {_one_line(exc)}") \
                from None


class ProtobufWriterDeserializer:
    """Protobuf with the writer's message type, built from its registered schema: Confluent's
    ProtobufDeserializer needs a generated class, which a generic consumer does not have."""

    def __init__(self, client: Any) -> None:
        from google.protobuf.message import Message as ProtoMessage

        self.client = client
        self._types: dict[tuple[int, tuple[int, ...]], Callable[[bytes, Any], ProtoMessage]] = {}

    def __call__(self, data: bytes, ctx: Any) -> Any:
        from confluent_kafka.schema_registry import dual_schema_id_deserializer
        from confluent_kafka.schema_registry.common.protobuf import PROTOBUF_TYPE
        from confluent_kafka.schema_registry.common.serde import SchemaId
        from google.protobuf.json_format import MessageToDict

        schema_id = SchemaId(PROTOBUF_TYPE)
        dual_schema_id_deserializer(data, ctx, schema_id)
        assert schema_id.id is not None
        indexes = tuple(schema_id.message_indexes or [0])
        if (schema_id.id, indexes) not in self._types:
            self._types[schema_id.id, indexes] = self._deserializer(schema_id.id, indexes)
        return MessageToDict(self._types[schema_id.id, indexes](data, ctx),
                             preserving_proto_field_name=True)

    def _deserializer(self, schema_id: int, indexes: tuple[int, ...]) -> Any:
        """Confluent's deserializer for the message type at `indexes` of schema `schema_id`."""
        from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
        from google.protobuf import empty_pb2
        from google.protobuf.message_factory import GetMessageClass

        schema = self.client.get_schema(schema_id, fmt="serialized")
        # Any type will do to reach the writer's file: its pool resolves the references.
        probe = ProtobufDeserializer(empty_pb2.Empty, {"use.deprecated.format": False},
                                     self.client)
        proto, pool = probe._get_parsed_schema(schema)
        file = pool.FindFileByName(proto.name)
        message_class = GetMessageClass(probe._get_message_desc(pool, file, list(indexes)))
        return ProtobufDeserializer(message_class, {"use.deprecated.format": False}, self.client)


def _warn(text: str) -> None:
    print(f"minikafka consume: {text}", file=sys.stderr, flush=True)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__
