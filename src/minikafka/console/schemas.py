"""The console's Schemas page: the registry's subjects, each one's versions (the page diffs
them) and compatibility level, and a check of a schema against a subject, read from the
registry running in this broker (no HTTP between them); and the message browser's decoding of
records written with a registered schema."""

from __future__ import annotations

from typing import Any

from ..registry.errors import RegistryError
from ..registry.formats import HEADER_SIZE, to_json, wire_schema_id
from ..registry.service import Registry

Json = dict[str, Any]


def running(registry: Registry | None) -> Registry:
    if registry is None:
        raise RegistryError(404, 404, "this broker runs no schema registry "
                            "(started with --no-schema-registry)")
    return registry


def subjects(registry: Registry | None) -> Json:
    """Every subject with live versions, its latest one and level; `enabled` False without a
    registry."""
    if registry is None:
        return {"enabled": False, "level": None, "subjects": []}
    rows = []
    for name in registry.subjects():
        versions = registry.versions(name)
        latest = versions[-1]
        rows.append({"subject": name, "versions": len(versions),
                     "latest": latest.version, "id": latest.id, "type": latest.schema_type,
                     "level": registry.level(name)})
    return {"enabled": True, "level": registry.level(None), "subjects": rows}


def subject(registry: Registry, name: str) -> Json:
    """A subject's live versions (oldest first), with their schemas, and its level."""
    return {"subject": name, "level": registry.level(name), "versions": [
        {"version": v.version, "id": v.id, "type": v.schema_type, "schema": v.schema,
         "references": [r.to_json() for r in v.references]}
        for v in registry.versions(name)]}


def check(registry: Registry, name: str, text: str, schema_type: str) -> Json:
    """Would `text` register under `name`? As registering would check it, with the reasons."""
    candidate = registry.candidate({"schema": text, "schemaType": schema_type})
    problems = registry.incompatibilities(candidate, registry.level(name),
                                          registry.state.versions(name))
    return {"is_compatible": not problems, "messages": problems}


def decoded(registry: Registry | None, value: bytes | None) -> Json | None:
    """How the message browser shows a value written with a schema of `registry`: the schema's
    id, type and subjects, and the data as JSON text (or why it does not decode); None for a
    value in no wire format, or naming no schema of this registry (shown raw)."""
    schema_id = None if registry is None or value is None else wire_schema_id(value)
    if schema_id is None or value is None or registry is None:
        return None
    try:
        version = registry.schema(schema_id)
    except RegistryError:
        return None
    shown: Json = {"id": schema_id, "type": version.schema_type, "subjects": sorted(
        {v.subject for v in registry.holders(schema_id, deleted=True)})}
    try:
        shown["value"] = to_json(registry.decode(version, value[HEADER_SIZE:]))
    except Exception as exc:  # each format's library raises its own kinds
        shown["error"] = " ".join(str(exc).split())[:300] or type(exc).__name__
    return shown
