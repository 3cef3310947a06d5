"""The console's Schemas page: the registry's subjects, each one's versions (the page diffs
them) and compatibility level, and a check of a schema against a subject, read from the
registry running in this broker (no HTTP between them)."""

from __future__ import annotations

from typing import Any

from ..registry.errors import RegistryError
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
        latest = registry.versions(name)[-1]
        rows.append({"subject": name, "versions": len(registry.versions(name)),
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
