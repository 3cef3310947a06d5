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


Resolved = Sequence[tuple[str, str]]  # the referenced schemas' (name, text), dependencies first


def parse(schema_type: str, text: str, references: Resolved = ()) -> ParsedSchema:
    """Parse `text` as `schema_type` (AVRO, JSON or PROTOBUF); InvalidSchema if it is not one."""
    module = importlib.import_module(f".{schema_type.lower()}", __name__)
    parsed: ParsedSchema = module.parse(text, references)
    return parsed
