"""Events on the wire: JSON Schema through a schema registry (Confluent's REST API: ours in
`minikafka serve`, or Confluent's), with the standard serializers.

A value is the registry's wire format: magic byte 0, the 4-byte id of the writer's schema, then
JSON. Each topic's schema is registered under `<topic>-value` (TopicNameStrategy) when a shop
process starts; the serializers then only look it up, so a schema the registry refuses (an
incompatible change) stops the process at start, not at its first event.

The serializers' own JSON Schema validation is off: the schemas are derived from the pydantic
models that build every event and check every decoded one (shop/events.py), in a tenth of the
time (jsonschema took ~190 µs an event on each side, the whole encode without it ~15 µs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

from ..registry.errors import SCHEMA_NOT_FOUND
from ..registry.formats import wire_schema_id


class Undecodable(ValueError):
    """A value that is not a record of a registered schema; the message says why."""


def subject_of(topic: str) -> str:
    """The subject of a topic's values under TopicNameStrategy."""
    return f"{topic}-value"


class RegistryCodec:
    """JSON values of `schemas` (topic -> JSON schema) written and read through a registry."""

    def __init__(self, url: str, schemas: Mapping[str, Mapping[str, Any]]) -> None:
        self.client = SchemaRegistryClient({"url": url.rstrip("/")})
        self.schemas = {topic: Schema(json.dumps(schema), "JSON") for topic, schema in
                        schemas.items()}
        self._serializers = {
            topic: JSONSerializer(schema.schema_str, self.client,
                                  conf={"auto.register.schemas": False, "validate": False})
            for topic, schema in self.schemas.items()}
        self._deserializer = JSONDeserializer(None, conf={"validate": False},
                                              schema_registry_client=self.client)

    def register(self) -> dict[str, int]:
        """Register every topic's schema under its subject; the ids, by subject."""
        return {subject_of(topic): self.client.register_schema(subject_of(topic), schema)
                for topic, schema in self.schemas.items()}

    def serialize(self, topic: str, value: Mapping[str, Any]) -> bytes:
        encoded = self._serializers[topic](value, _context(topic))
        assert encoded is not None
        return encoded

    def deserialize(self, topic: str, value: bytes) -> Any:
        """The JSON document in `value` (its writer's schema registered), or Undecodable.

        A registry that cannot be reached is not the record's fault: that error propagates."""
        schema_id = wire_schema_id(value)
        if schema_id is None:
            raise Undecodable("not in the schema registry's wire format (magic byte 0, "
                              "schema id, payload)")
        try:
            return self._deserializer(value, _context(topic))
        except SchemaRegistryError as exc:
            if exc.error_code != SCHEMA_NOT_FOUND:
                raise
            raise Undecodable(f"unknown schema id {schema_id}") from None
        except (SerializationError, ValueError) as exc:  # json's errors are ValueErrors
            raise Undecodable(f"schema id {schema_id}: {_one_line(exc)}") from None


def _context(topic: str) -> SerializationContext:
    return SerializationContext(topic, MessageField.VALUE)


def _one_line(exc: Exception) -> str:
    text = str(exc.args[0] if exc.args else exc)
    return " ".join(text.split())[:300]
