"""The schema formats the registry takes, each parsed and checked by a library made for it:
Avro (`avro`: parsing, and its reader/writer schema resolution for compatibility), JSON Schema
(`jsonschema` checks the schema against its draft's meta-schema; its compatibility rules are
Confluent's, written out in `json.py` as no library has them) and Protobuf (`proto-schema-parser`
for .proto text, `protobuf` for the serialized descriptors Confluent's clients send).

Each format module is imported on first use, so a broker that never sees a schema of a format
never loads its library.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from json import dumps  # (the name `json` is this package's JSON Schema module)
from typing import Any

SCHEMA_TYPES = ("JSON", "PROTOBUF", "AVRO")  # the order of Confluent's GET /schemas/types


class ParsedSchema(ABC):
    """A schema its library accepted."""

    canonical: str  # the text stored and answered (Confluent's canonicalString)

    def normalized(self) -> str:
        """The form `?normalize=true` registers and looks up (the canonical one unless the
        format knows a stricter one)."""
        return self.canonical

    def formatted(self, fmt: str) -> str:
        """The schema in the form `?format=` asks for (Protobuf's "serialized": a base64
        FileDescriptorProto); the canonical text for a format it does not have."""
        return self.canonical

    @abstractmethod
    def incompatibilities(self, writer: ParsedSchema) -> list[str]:
        """Why data written with `writer` cannot be read with this schema (empty: it can)."""

    @abstractmethod
    def decode(self, payload: bytes) -> Any:
        """The data in `payload`, what follows the wire format's magic byte and schema id, as
        written with this schema; ValueError (or the library's error) if it is not."""


HEADER_SIZE = 5  # the wire format's magic byte 0 and 4-byte schema id, before the payload


def wire_header(schema_id: int) -> bytes:
    """What goes before a payload written with the schema `schema_id`."""
    return b"\0" + schema_id.to_bytes(HEADER_SIZE - 1, "big")


def wire_schema_id(data: bytes) -> int | None:
    """The schema id of bytes in the registry's wire format; None for any other bytes."""
    if len(data) < HEADER_SIZE or data[0] != 0:
        return None
    return int.from_bytes(data[1:HEADER_SIZE], "big")


def to_json(data: Any) -> str:
    """Decoded data as JSON text (Avro's bytes, dates and decimals as strings)."""
    def fallback(item: Any) -> Any:
        if isinstance(item, bytes):
            return item.decode(errors="backslashreplace")
        return item.isoformat() if hasattr(item, "isoformat") else str(item)

    return dumps(data, ensure_ascii=False, default=fallback)


Resolved = Sequence[tuple[str, str]]  # the referenced schemas' (name, text), dependencies first


def parse(schema_type: str, text: str, references: Resolved = ()) -> ParsedSchema:
    """Parse `text` as `schema_type` (AVRO, JSON or PROTOBUF); InvalidSchema if it is not one."""
    module = importlib.import_module(f".{schema_type.lower()}", __name__)
    parsed: ParsedSchema = module.parse(text, references)
    return parsed
