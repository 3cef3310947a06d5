"""Protobuf: a schema is .proto text (parsed by `proto-schema-parser`) or, as Confluent's clients
send it, a base64-encoded FileDescriptorProto (parsed by `protobuf`). Both become the same model,
and compatibility follows Confluent's Protobuf rules, which are about the wire: field numbers
and wire types, not names. Refused: a changed package, a removed (or renamed) message, a field
whose kind (scalar, message, enum, map) or scalar wire type changes, or whose message type is
another, a required field added or removed, a field removed from a oneof, several fields moved
into one oneof. Allowed: added or removed fields, renamed fields, new messages and enum values.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from antlr4.error.ErrorListener import ErrorListener
from google.protobuf import descriptor_pb2
from google.protobuf.message import DecodeError
from proto_schema_parser import ast
from proto_schema_parser.parser import Parser

from ..errors import InvalidSchema
from . import ParsedSchema, Resolved

SCALARS = frozenset({"double", "float", "int64", "uint64", "int32", "fixed64", "fixed32", "bool",
                     "string", "bytes", "uint32", "sfixed32", "sfixed64", "sint32", "sint64"})
# Scalars that read each other's bytes (Confluent's compatible scalar groups).
_WIRE_GROUPS = ({"int32", "uint32", "int64", "uint64", "bool", "enum"}, {"sint32", "sint64"},
                {"fixed32", "sfixed32"}, {"fixed64", "sfixed64"}, {"string", "bytes"})
_BASE64 = re.compile(r"^[A-Za-z0-9+/\s]+=*\s*$")
_BUILTIN = "google/protobuf/"


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: str  # a scalar's name, "enum", "message" or "map"
    type_name: str = ""  # a message's or enum's name (its last part); a map's "key,value"
    label: str = "optional"  # or "repeated", "required"
    oneof: str | None = None


@dataclass(slots=True)
class ProtoModel:
    package: str = ""
    imports: list[str] = field(default_factory=list)
    messages: dict[str, dict[int, Field]] = field(default_factory=dict)  # "Outer.Inner" -> fields


class ProtobufSchema(ParsedSchema):
    def __init__(self, model: ProtoModel, canonical: str) -> None:
        self.model = model
        self.canonical = canonical

    def incompatibilities(self, writer: ParsedSchema) -> list[str]:
        assert isinstance(writer, ProtobufSchema)
        return list(_diff(self.model, writer.model))


def parse(text: str, references: Resolved) -> ProtobufSchema:
    text = text.strip()
    model = _from_descriptor(text) if _BASE64.match(text) else None
    if model is None:
        model = _from_text(text)
    names = {name for name, _ in references}
    for imported in model.imports:
        if not imported.startswith(_BUILTIN) and imported not in names:
            raise InvalidSchema(f"{text[:200]}: import {imported!r} has no reference")
    return ProtobufSchema(model, text)


# --- .proto text ---------------------------------------------------------------------------------


class _Strict(ErrorListener):
    """ANTLR reports a syntax error and recovers; a registry refuses the schema instead."""

    def syntaxError(self, recognizer: object, offending: object, line: int, column: int,
                    msg: str, e: object) -> None:
        raise ValueError(f"line {line}:{column} {msg}")


def _strict(recognizer: object) -> None:
    recognizer.removeErrorListeners()  # type: ignore[attr-defined]
    recognizer.addErrorListener(_Strict())  # type: ignore[attr-defined]


def _from_text(text: str) -> ProtoModel:
    try:
        parsed = Parser(setup_lexer=_strict, setup_parser=_strict).parse(text)
    except Exception as exc:  # the parser's own errors have no common base class
        raise InvalidSchema(f"{text[:200]}: {exc}") from None
    model = ProtoModel()
    enums = _enum_names(parsed.file_elements)
    for element in parsed.file_elements:
        if isinstance(element, ast.Package):
            model.package = element.name
        elif isinstance(element, ast.Import):
            model.imports.append(element.name)
        elif isinstance(element, ast.Message):
            _add_message(model, element, "", enums)
    return model


def _enum_names(elements: Sequence[object]) -> set[str]:
    found = set()
    for element in elements:
        if isinstance(element, ast.Enum):
            found.add(element.name)
        elif isinstance(element, ast.Message):
            found |= _enum_names(element.elements)
    return found


def _add_message(model: ProtoModel, message: ast.Message, prefix: str, enums: set[str]) -> None:
    name = prefix + message.name
    fields: dict[int, Field] = {}
    model.messages[name] = fields

    def add(number: int, found: Field) -> None:
        if number in fields:
            raise InvalidSchema(f"field number {number} is used twice in message {name}")
        fields[number] = found

    for element in message.elements:
        if isinstance(element, ast.Message):
            _add_message(model, element, name + ".", enums)
        elif isinstance(element, ast.MapField):
            add(element.number, Field(element.name, "map",
                                      f"{element.key_type},{element.value_type}", "repeated"))
        elif isinstance(element, ast.Field):
            add(element.number, _text_field(element, None, enums))
        elif isinstance(element, ast.OneOf):
            for member in element.elements:
                if isinstance(member, ast.Field):
                    add(member.number, _text_field(member, element.name, enums))


def _text_field(found: ast.Field, oneof: str | None, enums: set[str]) -> Field:
    label = found.cardinality.value.lower() if found.cardinality else "optional"
    if found.type in SCALARS:
        return Field(found.name, found.type, "", label, oneof)
    short = found.type.rsplit(".", 1)[-1]
    return Field(found.name, "enum" if short in enums else "message", short, label, oneof)


# --- serialized descriptors ----------------------------------------------------------------------


def _from_descriptor(text: str) -> ProtoModel | None:
    """The model of a base64 FileDescriptorProto; None if `text` is not one."""
    try:
        proto = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(text,
                                                                               validate=False))
    except (binascii.Error, DecodeError, ValueError):
        return None
    if not (proto.name or proto.message_type or proto.enum_type):
        return None
    model = ProtoModel(proto.package, list(proto.dependency))
    for message in proto.message_type:
        _add_descriptor(model, message, "")
    return model


_TYPE_NAMES = {number: name[len("TYPE_"):].lower()
               for name, number in descriptor_pb2.FieldDescriptorProto.Type.items()}
_LABELS = {number: name[len("LABEL_"):].lower()
           for name, number in descriptor_pb2.FieldDescriptorProto.Label.items()}


def _add_descriptor(model: ProtoModel, message: descriptor_pb2.DescriptorProto, prefix: str
                    ) -> None:
    name = prefix + message.name
    entries = {nested.name: nested for nested in message.nested_type if nested.options.map_entry}
    fields: dict[int, Field] = {}
    model.messages[name] = fields
    for nested in message.nested_type:
        if not nested.options.map_entry:
            _add_descriptor(model, nested, name + ".")
    for found in message.field:
        kind = _TYPE_NAMES[found.type]
        short = found.type_name.rsplit(".", 1)[-1]
        oneof = (message.oneof_decl[found.oneof_index].name
                 if found.HasField("oneof_index") and not found.proto3_optional else None)
        if kind == "message" and short in entries:
            key, value = entries[short].field
            fields[found.number] = Field(found.name, "map", ",".join(
                _TYPE_NAMES[f.type] if not f.type_name else f.type_name.rsplit(".", 1)[-1]
                for f in (key, value)), "repeated")
        elif kind in ("message", "enum", "group"):
            fields[found.number] = Field(found.name, "message" if kind == "group" else kind,
                                         short, _LABELS[found.label], oneof)
        else:
            fields[found.number] = Field(found.name, kind, "", _LABELS[found.label], oneof)


# --- compatibility -------------------------------------------------------------------------------


def _diff(reader: ProtoModel, writer: ProtoModel) -> Iterator[str]:
    if reader.package != writer.package:
        yield _error("PACKAGE_CHANGED", "#/")
    for name, written in writer.messages.items():
        read = reader.messages.get(name)
        if read is None:
            yield _error("MESSAGE_REMOVED", f"#/{name}")
            continue
        moved: dict[str, int] = {}
        for number, before in written.items():
            where = f"#/{name}/{number}"
            after = read.get(number)
            if after is None:
                if before.oneof is not None:
                    yield _error("ONEOF_FIELD_REMOVED", where)
                if before.label == "required":
                    yield _error("REQUIRED_FIELD_REMOVED", where)
                continue
            yield from _field_diff(before, after, where)
            if after.oneof is not None and before.oneof is None:
                moved[after.oneof] = moved.get(after.oneof, 0) + 1
        for number, after in read.items():
            if number not in written and after.label == "required":
                yield _error("REQUIRED_FIELD_ADDED", f"#/{name}/{number}")
        for oneof, count in moved.items():
            if count > 1:
                yield _error("MULTIPLE_FIELDS_MOVED_TO_ONEOF", f"#/{name}/{oneof}")


def _field_diff(before: Field, after: Field, where: str) -> Iterator[str]:
    if before.kind != after.kind:
        if not any({before.kind, after.kind} <= group for group in _WIRE_GROUPS):
            scalars = before.kind in SCALARS and after.kind in SCALARS
            yield _error("FIELD_SCALAR_KIND_CHANGED" if scalars else "FIELD_KIND_CHANGED", where)
    elif before.type_name != after.type_name and before.kind in ("message", "map"):
        yield _error("FIELD_NAMED_TYPE_CHANGED", where)
    if (before.label == "required") != (after.label == "required"):
        yield _error("REQUIRED_FIELD_REMOVED" if before.label == "required"
                     else "REQUIRED_FIELD_ADDED", where)


def _error(kind: str, path: str) -> str:
    return f"{{errorType:'{kind}', description:'at path '{path}''}}"
