"""Protobuf: a schema is .proto text (parsed by `proto-schema-parser`, its types resolved as protoc
resolves them, into a FileDescriptorProto) or, as Confluent's clients send it, a base64-encoded
FileDescriptorProto (parsed by `protobuf`). `?format=serialized` answers the descriptor, which
is what Confluent's deserializers ask for. Compatibility follows Confluent's Protobuf rules,
which are about the wire: field numbers and wire types, not names. Refused: a changed package,
a removed (or renamed) message, a field whose kind (scalar, message, enum, map) or scalar wire
type changes, or whose message type is another, a required field added or removed, a field
removed from a oneof, several fields moved into one oneof. Allowed: added or removed fields,
renamed fields, new messages and enum values.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from antlr4.error.ErrorListener import ErrorListener
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import DecodeError
from proto_schema_parser import ast
from proto_schema_parser.parser import Parser

from ...records import decode_varint
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
    def __init__(self, proto: descriptor_pb2.FileDescriptorProto, canonical: str) -> None:
        self.proto = proto
        self.model = _model(proto)
        self.canonical = canonical
        self._classes: dict[tuple[int, ...], Any] = {}  # per message index path: built once

    def formatted(self, fmt: str) -> str:
        if fmt == "serialized":
            return base64.b64encode(self.proto.SerializeToString()).decode()
        return self.canonical

    def decode(self, payload: bytes) -> Any:
        """The message at the payload's message indexes (Confluent's prefix: a zigzag varint
        count, then each index; 0 alone is the first message), as JSON data."""
        count, at = decode_varint(payload, 0)  # Kafka's zigzag varints, as Confluent writes
        indexes = []
        for _ in range(count):
            index, at = decode_varint(payload, at)
            indexes.append(index)
        message = self._message_class(tuple(indexes or [0]))
        return json_format.MessageToDict(message.FromString(payload[at:]),
                                         preserving_proto_field_name=True)

    def _message_class(self, indexes: tuple[int, ...]) -> Any:
        """The class of the message at `indexes` (nested messages after the first), built from
        this file and the well-known files it imports (a schema with references: ValueError);
        built once per path, not per record."""
        if indexes not in self._classes:
            self._classes[indexes] = self._build_message_class(indexes)
        return self._classes[indexes]

    def _build_message_class(self, indexes: tuple[int, ...]) -> Any:
        pool = descriptor_pool.DescriptorPool()
        for imported in self.proto.dependency:
            builtin = _builtin(imported)
            if builtin is None:
                raise ValueError(f"import {imported!r}: records of schemas with references are "
                                 "not decoded")
            pool.Add(builtin)
        pool.Add(self.proto)
        messages, name = self.proto.message_type, self.proto.package
        for index in indexes:
            if not 0 <= index < len(messages):
                raise ValueError(f"no message at index {index} of {name or 'the file'}")
            name = f"{name}.{messages[index].name}" if name else messages[index].name
            messages = messages[index].nested_type
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(name))

    def incompatibilities(self, writer: ParsedSchema) -> list[str]:
        assert isinstance(writer, ProtobufSchema)
        return list(_diff(self.model, writer.model))


def parse(text: str, references: Resolved) -> ProtobufSchema:
    text = text.strip()
    known: dict[str, int] = {}  # full name (".pkg.Msg") -> TYPE_MESSAGE or TYPE_ENUM
    for name, referenced in references:
        _declare(_descriptor(referenced.strip(), known, name), known)
    proto = _descriptor(text, known, "")
    names = {name for name, _ in references}
    for imported in proto.dependency:
        if not imported.startswith(_BUILTIN) and imported not in names:
            raise InvalidSchema(f"{text[:200]}: import {imported!r} has no reference")
    return ProtobufSchema(proto, text)


def _descriptor(text: str, known: dict[str, int], where: str
                ) -> descriptor_pb2.FileDescriptorProto:
    """The FileDescriptorProto of a schema, base64 or text (`where`: the reference it is)."""
    decoded = _decoded(text) if _BASE64.match(text) else None
    if decoded is not None:
        return decoded
    try:
        return _compile(text, known)
    except InvalidSchema as exc:
        if where:
            raise InvalidSchema(f"reference {where!r}: {exc.message}") from None
        raise


def _decoded(text: str) -> descriptor_pb2.FileDescriptorProto | None:
    """The base64 FileDescriptorProto in `text`; None if it is not one."""
    try:
        proto = descriptor_pb2.FileDescriptorProto.FromString(base64.b64decode(text))
    except (binascii.Error, DecodeError, ValueError):
        return None
    return proto if proto.name or proto.message_type or proto.enum_type else None


def _declare(proto: descriptor_pb2.FileDescriptorProto, known: dict[str, int]) -> None:
    """Add the types `proto` declares to `known`."""
    def walk(messages: Iterable[descriptor_pb2.DescriptorProto],
             enums: Iterable[descriptor_pb2.EnumDescriptorProto], scope: str) -> None:
        for enum in enums:
            known[f"{scope}.{enum.name}"] = _ENUM
        for message in messages:
            known[f"{scope}.{message.name}"] = _MESSAGE
            walk(message.nested_type, message.enum_type, f"{scope}.{message.name}")

    walk(proto.message_type, proto.enum_type, f".{proto.package}" if proto.package else "")


def _builtin(path: str) -> descriptor_pb2.FileDescriptorProto | None:
    """A well-known type's file (google/protobuf/timestamp.proto), from the protobuf package."""
    module_name = path.removesuffix(".proto").replace("/", ".") + "_pb2"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)


# --- .proto text ---------------------------------------------------------------------------------


class _Strict(ErrorListener):
    """ANTLR reports a syntax error and recovers; a registry refuses the schema instead."""

    def syntaxError(self, recognizer: object, offending: object, line: int, column: int,
                    msg: str, e: object) -> None:
        raise ValueError(f"line {line}:{column} {msg}")


def _strict(recognizer: object) -> None:
    recognizer.removeErrorListeners()  # type: ignore[attr-defined]
    recognizer.addErrorListener(_Strict())  # type: ignore[attr-defined]


_SCALAR_TYPES = {name: descriptor_pb2.FieldDescriptorProto.Type.Value(f"TYPE_{name.upper()}")
                 for name in SCALARS}
_MESSAGE = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
_ENUM = descriptor_pb2.FieldDescriptorProto.TYPE_ENUM
_LABEL = descriptor_pb2.FieldDescriptorProto.Label


def _compile(text: str, imported: dict[str, int]) -> descriptor_pb2.FileDescriptorProto:
    """The FileDescriptorProto protoc would make of `text`, given the types its references
    declare (`imported`); InvalidSchema for bad syntax or a type that is nowhere."""
    try:
        parsed = Parser(setup_lexer=_strict, setup_parser=_strict).parse(text)
    except Exception as exc:  # the parser's own errors have no common base class
        raise InvalidSchema(f"{text[:200]}: {exc}") from None
    proto = descriptor_pb2.FileDescriptorProto(syntax=parsed.syntax or "proto2")
    known = dict(imported)
    for element in parsed.file_elements:
        if isinstance(element, ast.Package):
            proto.package = element.name
        elif isinstance(element, ast.Import):
            proto.dependency.append(element.name)
            builtin = _builtin(element.name) if element.name.startswith(_BUILTIN) else None
            if builtin is not None:
                _declare(builtin, known)
    scope = f".{proto.package}" if proto.package else ""
    compiler = _Compiler(known, proto.syntax == "proto3")
    messages = [e for e in parsed.file_elements if isinstance(e, ast.Message)]
    enums = [e for e in parsed.file_elements if isinstance(e, ast.Enum)]
    compiler.declare(messages, enums, scope)
    proto.message_type.extend(compiler.message(m, scope) for m in messages)
    proto.enum_type.extend(_enum(e) for e in enums)
    return proto


def _enum(enum: ast.Enum) -> descriptor_pb2.EnumDescriptorProto:
    return descriptor_pb2.EnumDescriptorProto(name=enum.name, value=[
        descriptor_pb2.EnumValueDescriptorProto(name=v.name, number=v.number)
        for v in enum.elements if isinstance(v, ast.EnumValue)])


class _Compiler:
    """Messages of one file, their field types resolved from the innermost scope outwards."""

    def __init__(self, known: dict[str, int], proto3: bool) -> None:
        self.known = known
        self.proto3 = proto3

    def declare(self, messages: Iterable[ast.Message], enums: Iterable[ast.Enum], scope: str
                ) -> None:
        for enum in enums:
            self.known[f"{scope}.{enum.name}"] = _ENUM
        for message in messages:
            inner = f"{scope}.{message.name}"
            self.known[inner] = _MESSAGE
            self.declare([e for e in message.elements if isinstance(e, ast.Message)],
                         [e for e in message.elements if isinstance(e, ast.Enum)], inner)

    def resolve(self, name: str, scope: str) -> tuple[int, str]:
        """(TYPE_MESSAGE or TYPE_ENUM, full name) of the type `name` used in `scope`."""
        if name.startswith("."):
            candidates = [name]
        else:
            parts = scope.split(".")
            candidates = [".".join([*parts[:i], name]) for i in range(len(parts), 0, -1)]
            candidates = [c if c.startswith(".") else f".{c}" for c in candidates]
        for candidate in candidates:
            if candidate in self.known:
                return self.known[candidate], candidate
        raise InvalidSchema(f"type {name!r} (used in {scope.lstrip('.') or 'the file'}) is "
                            "not defined")

    def field(self, found: ast.Field | ast.MapField, scope: str, entry: str = ""
              ) -> descriptor_pb2.FieldDescriptorProto:
        out = descriptor_pb2.FieldDescriptorProto(name=found.name, number=found.number,
                                                  json_name=_camel(found.name, upper=False))
        if isinstance(found, ast.MapField):
            out.label, out.type, out.type_name = _LABEL.LABEL_REPEATED, _MESSAGE, entry
            return out
        cardinality = found.cardinality.value if found.cardinality else "OPTIONAL"
        out.label = _LABEL.Value(f"LABEL_{cardinality}")
        if found.type in _SCALAR_TYPES:
            out.type = _SCALAR_TYPES[found.type]
        else:
            out.type, out.type_name = self.resolve(found.type, scope)
        return out

    def message(self, message: ast.Message, scope: str) -> descriptor_pb2.DescriptorProto:
        full = f"{scope}.{message.name}"
        out = descriptor_pb2.DescriptorProto(name=message.name)
        optional: list[descriptor_pb2.FieldDescriptorProto] = []
        numbers: set[int] = set()

        def add(field: descriptor_pb2.FieldDescriptorProto) -> None:
            if field.number in numbers:
                raise InvalidSchema(f"field number {field.number} is used twice in message "
                                    f"{full.lstrip('.')}")
            numbers.add(field.number)
            out.field.append(field)

        for element in message.elements:
            if isinstance(element, ast.Field):
                add(self.field(element, full))
                if self.proto3 and element.cardinality == ast.FieldCardinality.OPTIONAL:
                    optional.append(out.field[-1])
            elif isinstance(element, ast.MapField):
                entry = _camel(element.name) + "Entry"
                out.nested_type.append(descriptor_pb2.DescriptorProto(
                    name=entry, options=descriptor_pb2.MessageOptions(map_entry=True),
                    field=[self.field(ast.Field(name="key", number=1, type=element.key_type),
                                      full),
                           self.field(ast.Field(name="value", number=2,
                                                type=element.value_type), full)]))
                add(self.field(element, full, f"{full}.{entry}"))
            elif isinstance(element, ast.OneOf):
                out.oneof_decl.add(name=element.name)
                for member in element.elements:
                    if isinstance(member, ast.Field):
                        add(self.field(member, full))
                        out.field[-1].oneof_index = len(out.oneof_decl) - 1
            elif isinstance(element, ast.Message):
                out.nested_type.append(self.message(element, full))
            elif isinstance(element, ast.Enum):
                out.enum_type.append(_enum(element))
        for synthetic in optional:  # proto3 `optional`: a oneof each, after the real ones
            out.oneof_decl.add(name=f"_{synthetic.name}")
            synthetic.oneof_index, synthetic.proto3_optional = len(out.oneof_decl) - 1, True
        return out


def _camel(name: str, upper: bool = True) -> str:
    """protoc's CamelCase of a field name (a map's entry type; lowerCamel: its JSON name)."""
    first, *rest = name.split("_")
    tail = "".join(p[:1].upper() + p[1:] for p in rest)
    return (first[:1].upper() + first[1:] if upper else first) + tail


# --- the model of a descriptor -------------------------------------------------------------------


def _model(proto: descriptor_pb2.FileDescriptorProto) -> ProtoModel:
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
