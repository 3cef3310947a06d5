"""JSON Schema: `jsonschema` checks a schema against its draft's meta-schema (Draft 7 unless its
`$schema` names another). Compatibility follows Confluent's JSON Schema rules for the common
cases (no library has them): a reader must accept every document the writer's schema accepts, so

- a type may widen (integer to number, more types) but not narrow or change;
- under an open content model (additionalProperties absent or true) a property may be removed
  but not added (old documents may hold it with any value); under a closed one
  (additionalProperties false) a property may be added but not removed;
- a required property may not be added, nor an optional one made required;
- enums may grow, not shrink; bounds may relax, not tighten; closing an open model is refused;
- arrays check their items; unions (oneOf/anyOf) need each writer branch read by a reader branch;
  local `$ref`s (#/definitions/..., #/$defs/...) are followed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.validators

from ..errors import InvalidSchema
from . import ParsedSchema, Resolved

Node = Mapping[str, Any] | bool
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_UNIONS = ("oneOf", "anyOf")


class JsonSchema(ParsedSchema):
    def __init__(self, schema: Node, canonical: str) -> None:
        self.schema = schema
        self.canonical = canonical

    def normalized(self) -> str:
        return json.dumps(self.schema, sort_keys=True, separators=(",", ":"))

    def decode(self, payload: bytes) -> Any:
        return json.loads(payload)

    def incompatibilities(self, writer: ParsedSchema) -> list[str]:
        assert isinstance(writer, JsonSchema)
        return list(_Diff(self.schema, writer.schema).check(self.schema, writer.schema, "#"))


def parse(text: str, references: Resolved) -> JsonSchema:
    try:
        schema = json.loads(text)
        if not isinstance(schema, dict | bool):
            raise InvalidSchema(f"{text[:200]}: a JSON schema is an object or a boolean")
        if isinstance(schema, dict):
            validator = jsonschema.validators.validator_for(schema, jsonschema.Draft7Validator)
            validator.check_schema(schema)
    except ValueError as exc:
        raise InvalidSchema(f"{text[:200]}: {exc}") from None
    except jsonschema.exceptions.SchemaError as exc:
        raise InvalidSchema(f"{text[:200]}: {exc.message}") from None
    return JsonSchema(schema, json.dumps(schema, separators=(",", ":"), ensure_ascii=False))


def _types(node: Mapping[str, Any]) -> set[str] | None:
    """The types a node allows (None: any)."""
    kind = node.get("type")
    if kind is None:
        return None
    types = {kind} if isinstance(kind, str) else set(kind)
    return types | {"integer"} if "number" in types else types


def _closed(node: Mapping[str, Any]) -> bool:
    return node.get("additionalProperties", True) is False


def _open(node: Mapping[str, Any]) -> bool:
    return node.get("additionalProperties", True) is True and "patternProperties" not in node


class _Diff:
    """The differences that make a reader reject what a writer accepts (Confluent's names)."""

    def __init__(self, reader_root: Node, writer_root: Node) -> None:
        self.roots = (reader_root, writer_root)
        self.seen: set[tuple[int, int]] = set()

    def _resolve(self, node: Node, root: Node) -> Node:
        for _ in range(32):  # a chain of $refs, bounded
            if not isinstance(node, Mapping) or not str(node.get("$ref", "")).startswith("#"):
                return node
            target: Any = root
            for part in str(node["$ref"])[1:].split("/")[1:]:
                target = target.get(part.replace("~1", "/").replace("~0", "~"), {}) \
                    if isinstance(target, Mapping) else {}
            node = target
        return node

    def check(self, reader: Node, writer: Node, path: str) -> Iterator[str]:
        reader = self._resolve(reader, self.roots[0])
        writer = self._resolve(writer, self.roots[1])
        if (id(reader), id(writer)) in self.seen:  # recursive schemas
            return
        self.seen.add((id(reader), id(writer)))
        if reader is True or reader == {}:
            return
        if reader is False or writer is True or writer == {}:
            if reader != writer:
                yield _diff("TYPE_NARROWED" if writer is not False else "TYPE_CHANGED", path)
            return
        assert isinstance(reader, Mapping) and isinstance(writer, Mapping)
        yield from self._unions(reader, writer, path)
        if any(key in writer for key in _UNIONS):
            return
        yield from self._type(reader, writer, path)
        yield from self._values(reader, writer, path)
        yield from self._object(reader, writer, path)
        if "items" in reader and isinstance(reader["items"], Mapping | bool):
            yield from self.check(reader["items"], writer.get("items", True), f"{path}/items")

    def _unions(self, reader: Mapping[str, Any], writer: Mapping[str, Any], path: str
                ) -> Iterator[str]:
        writer_branches = next((writer[k] for k in _UNIONS if k in writer), None)
        reader_branches = next((reader[k] for k in _UNIONS if k in reader), None)
        if reader_branches is None:
            if writer_branches is not None:
                for i, branch in enumerate(writer_branches):
                    yield from self.check(reader, branch, f"{path}/oneOf/{i}")
            return
        for i, branch in enumerate(writer_branches or [writer]):
            if not any(not list(_Diff(*self.roots).check(r, branch, path))
                       for r in reader_branches):
                yield _diff("COMBINED_TYPE_SUBSCHEMAS_CHANGED", f"{path}/oneOf/{i}")

    def _type(self, reader: Mapping[str, Any], writer: Mapping[str, Any], path: str
              ) -> Iterator[str]:
        read, written = _types(reader), _types(writer)
        if read is None or (written is not None and written <= read):
            return
        yield _diff("TYPE_CHANGED" if written and not written & read else "TYPE_NARROWED",
                    f"{path}/type")

    def _values(self, reader: Mapping[str, Any], writer: Mapping[str, Any], path: str
                ) -> Iterator[str]:
        if "enum" in reader:
            written = writer.get("enum")
            if written is None or not {json.dumps(v) for v in written} <= {
                    json.dumps(v) for v in reader["enum"]}:
                yield _diff("ENUM_ARRAY_NARROWED", f"{path}/enum")
        if "const" in reader and reader["const"] != writer.get("const", object()):
            yield _diff("CONST_CHANGED", f"{path}/const")
        if "pattern" in reader and reader["pattern"] != writer.get("pattern"):
            yield _diff("PATTERN_CHANGED", f"{path}/pattern")
        for key in _LOWER_BOUNDS:
            if key in reader and (key not in writer or writer[key] < reader[key]):
                yield _diff(key.upper() + "_INCREASED", f"{path}/{key}")
        for key in _UPPER_BOUNDS:
            if key in reader and (key not in writer or writer[key] > reader[key]):
                yield _diff(key.upper() + "_DECREASED", f"{path}/{key}")

    def _object(self, reader: Mapping[str, Any], writer: Mapping[str, Any], path: str
                ) -> Iterator[str]:
        read_props = reader.get("properties", {})
        written_props = writer.get("properties", {})
        if not read_props and not written_props and "required" not in reader \
                and _open(reader):
            return
        if _closed(reader) and not _closed(writer):
            yield _diff("ADDITIONAL_PROPERTIES_REMOVED", f"{path}/additionalProperties")
        required, was_required = set(reader.get("required", ())), set(writer.get("required", ()))
        for name, schema in written_props.items():
            where = f"{path}/properties/{name}"
            if name in read_props:
                yield from self.check(read_props[name], schema, where)
            elif _closed(reader):
                yield _diff("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", where)
            elif isinstance(reader.get("additionalProperties"), Mapping):
                yield from self.check(reader["additionalProperties"], schema, where)
        for name, schema in read_props.items():
            if name in written_props:
                if name in required and name not in was_required:
                    yield _diff("REQUIRED_ATTRIBUTE_ADDED", f"{path}/required/{name}")
                continue
            where = f"{path}/properties/{name}"
            if name in required and not (isinstance(schema, Mapping) and "default" in schema):
                yield _diff("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", where)
            elif _closed(writer):
                continue  # documents of the writer never hold it
            elif _open(writer):
                yield _diff("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", where)
            elif isinstance(writer.get("additionalProperties"), Mapping):
                yield from self.check(schema, writer["additionalProperties"], where)


def _diff(kind: str, path: str) -> str:
    return f"{{errorType:'{kind}', description:'at path '{path}''}}"
