"""Avro: the `avro` library parses (named types of referenced schemas known first) and checks
compatibility with its ReaderWriterCompatibilityChecker, Avro's own schema resolution rules."""

from __future__ import annotations

import io
import json
from typing import Any

import avro.errors
import avro.io
import avro.name
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from ..errors import InvalidSchema
from . import ParsedSchema, Resolved


class AvroSchema(ParsedSchema):
    def __init__(self, schema: avro.schema.Schema, canonical: str) -> None:
        self.schema = schema
        self.canonical = canonical

    def normalized(self) -> str:
        """Avro's Parsing Canonical Form: what two schemas that read and write alike share."""
        return str(self.schema.canonical_form)

    def decode(self, payload: bytes) -> Any:
        return avro.io.DatumReader(self.schema).read(avro.io.BinaryDecoder(io.BytesIO(payload)))

    def incompatibilities(self, writer: ParsedSchema) -> list[str]:
        assert isinstance(writer, AvroSchema)
        result = ReaderWriterCompatibilityChecker().get_compatibility(self.schema, writer.schema)
        if result.compatibility is SchemaCompatibilityType.compatible:
            return []
        kinds = [kind.name.upper() for kind in result.incompatibilities]
        return [f"{{errorType:'{kind}', description:'{message}', location:'{location}'}}"
                for kind, message, location in zip(
                    kinds or ["INCOMPATIBLE"], sorted(result.messages) or ["incompatible"],
                    sorted(result.locations), strict=False)]


def _names(references: Resolved) -> avro.name.Names:
    names = avro.name.Names()
    for name, text in references:
        try:
            avro.schema.make_avsc_object(json.loads(text), names)
        except (ValueError, avro.errors.AvroException) as exc:
            raise InvalidSchema(f"reference {name!r}: {exc}") from None
    return names


def parse(text: str, references: Resolved) -> AvroSchema:
    try:
        data = json.loads(text)
        schema = avro.schema.make_avsc_object(data, _names(references))
        # Referenced types print as their names, as in the schema that was given.
        canonical = json.dumps(schema.to_json(_names(references)), separators=(",", ":"))
    except (ValueError, TypeError, avro.errors.AvroException) as exc:
        raise InvalidSchema(f"{text[:200]}: {exc}") from None
    return AvroSchema(schema, canonical)
