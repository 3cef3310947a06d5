"""Events on the wire: JSON Schema through a schema registry (Confluent's REST API: ours in
`minikafka serve`, or Confluent's), in the registry's wire format.

A value is magic byte 0, the 4-byte id of the writer's schema, then JSON. Each topic's schema is
registered under `<topic>-value` (TopicNameStrategy) when a shop process starts, which gives its
id; a schema the registry refuses (an incompatible change) stops the process at start, not at
its first event. Reading, the id must be one the registry knows (asked once per id, through
confluent-kafka's SchemaRegistryClient).

The JSON itself is written and read by pydantic, from and to the models that build every event
and check every decoded one (shop/events.py): confluent-kafka's JSONSerializer and
JSONDeserializer, which read and write the same format, cost ~14 and ~16 µs an event on top of
that (a JSON Schema resolver built per message, json.dumps/loads); their own validation,
jsonschema against the schemas derived from those models, ~190 µs. Any registry-aware consumer
reads these values (`minikafka consume --value-format`, Confluent's deserializers: tested).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError

from ..registry.errors import SCHEMA_NOT_FOUND
from ..registry.formats import HEADER_SIZE, wire_header, wire_schema_id


class Undecodable(ValueError):
    """A value that is not a record of a registered schema; the message says why."""


def subject_of(topic: str) -> str:
    """The subject of a topic's values under TopicNameStrategy."""
    return f"{topic}-value"


class RegistryCodec:
    """JSON values of `schemas` (topic -> JSON schema) framed in the registry's wire format."""

    def __init__(self, url: str, schemas: Mapping[str, Mapping[str, Any]]) -> None:
        self.client = SchemaRegistryClient({"url": url.rstrip("/")})
        self.schemas = {topic: Schema(json.dumps(schema), "JSON") for topic, schema in
                        schemas.items()}
        self._headers: dict[str, bytes] = {}  # topic -> magic byte and its schema's id
        self._known: set[int] = set()  # ids the registry has (an id never changes its schema)

    def register(self) -> dict[str, int]:
        """Register every topic's schema under its subject; the ids, by subject."""
        ids = {}
        for topic, schema in self.schemas.items():
            ids[subject_of(topic)] = schema_id = self.client.register_schema(subject_of(topic),
                                                                             schema)
            self._headers[topic] = wire_header(schema_id)
        return ids

    def serialize(self, topic: str, payload: bytes) -> bytes:
        """`payload` (JSON of the topic's schema) in the wire format."""
        return self._headers[topic] + payload

    def payload(self, value: bytes) -> tuple[int, bytes]:
        """The schema id and the JSON of `value`, a record of a schema the registry knows; or
        Undecodable. A registry that cannot be reached is not the record's fault: that error
        propagates."""
        schema_id = wire_schema_id(value)
        if schema_id is None:
            raise Undecodable("not in the schema registry's wire format (magic byte 0, "
                              "schema id, payload)")
        if schema_id not in self._known:  # the client's cache, behind its lock, cost 6 % of
            try:  # a service's CPU when asked per record
                self.client.get_schema(schema_id)
            except SchemaRegistryError as exc:
                if exc.error_code != SCHEMA_NOT_FOUND:
                    raise
                raise Undecodable(f"unknown schema id {schema_id}") from None
            self._known.add(schema_id)
        return schema_id, value[HEADER_SIZE:]

