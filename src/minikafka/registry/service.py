"""What each request of Confluent's Schema Registry API does, on the store's state: registering,
looking up, reading, deleting (soft, then permanently), compatibility levels and checks, modes.
Refusals are `RegistryError`s with Confluent's codes; the REST app only translates.

Compatibility compares schemas of one subject with the level in force (the subject's, else the
global one, else BACKWARD): BACKWARD means the new schema reads data written with the latest
live version, FORWARD that the latest reads data written with the new one, FULL both;
*_TRANSITIVE checks every live version instead of the latest; NONE checks nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .errors import (
    InvalidSchema,
    RegistryError,
    bad_request,
    incompatible,
    invalid_compatibility_level,
    invalid_mode,
    invalid_version,
    not_permitted,
    reference_exists,
    schema_not_found,
    subject_config_not_found,
    subject_mode_not_found,
    subject_not_found,
    subject_not_soft_deleted,
    subject_soft_deleted,
    version_not_found,
    version_not_soft_deleted,
    version_soft_deleted,
)
from .formats import SCHEMA_TYPES, ParsedSchema, parse
from .store import (
    DEFAULT_COMPATIBILITY,
    DEFAULT_MODE,
    Reference,
    SchemaStore,
    SchemaVersion,
    parse_references,
    schema_key,
    schema_value,
    subject_key,
    with_deleted,
)

LEVELS = ("NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL",
          "FULL_TRANSITIVE")
MODES = ("READWRITE", "READONLY", "READONLY_OVERRIDE", "IMPORT")
MAX_VERSION = 2**31 - 1


class Candidate:
    """A schema in a request body, parsed with its references resolved."""

    def __init__(self, schema_type: str, references: tuple[Reference, ...],
                 parsed: ParsedSchema) -> None:
        self.schema_type = schema_type
        self.references = references
        self.parsed = parsed

    def identity(self, normalize: bool) -> tuple[str, str, tuple[Reference, ...]]:
        return (self.schema_type, self.parsed.normalized() if normalize else self.parsed.canonical,
                self.references)


def parse_version(raw: str) -> int | None:
    """A version in a path: a number in [1, 2^31-1], or latest / -1 (None); 42202 otherwise."""
    if raw in ("latest", "-1"):
        return None
    try:
        number = int(raw)
    except ValueError:
        raise invalid_version(raw) from None
    if not 1 <= number <= MAX_VERSION:
        raise invalid_version(raw)
    return number


class Registry:
    def __init__(self, store: SchemaStore) -> None:
        self.store = store
        self.state = store.state
        self._parsed: dict[tuple[str, str, tuple[Reference, ...]], ParsedSchema] = {}

    # --- schemas ------------------------------------------------------------------------------

    def _resolve(self, references: Iterable[Reference], seen: set[str] | None = None
                 ) -> list[tuple[str, str]]:
        """The referenced schemas' (name, text), each one's own references first."""
        seen = set() if seen is None else seen
        resolved = []
        for ref in references:
            if ref.name in seen:
                continue
            seen.add(ref.name)
            target = self.state.subjects.get(ref.subject, {}).get(ref.version)
            if target is None:
                raise InvalidSchema(f"reference {ref.name!r}: subject {ref.subject!r} has no "
                                    f"version {ref.version}")
            resolved += self._resolve(target.references, seen)
            resolved.append((ref.name, target.schema))
        return resolved

    def _stored(self, version: SchemaVersion) -> ParsedSchema:
        """A stored schema, parsed once (a request's own schema is parsed anew: what is kept
        is bounded by what is stored)."""
        key = version.identity
        if key not in self._parsed:
            self._parsed[key] = parse(version.schema_type, version.schema,
                                      self._resolve(version.references))
        return self._parsed[key]

    def candidate(self, body: Any) -> Candidate:
        """The schema a register, lookup or compatibility request sends."""
        if not isinstance(body, dict):
            raise bad_request("the request body must be a JSON object")
        text = body.get("schema")
        schema_type = str(body.get("schemaType") or "AVRO").upper()
        if schema_type not in SCHEMA_TYPES:
            raise InvalidSchema(f"type {schema_type}: the types are {', '.join(SCHEMA_TYPES)}")
        if not isinstance(text, str) or not text.strip():
            raise InvalidSchema("(empty): the request has no schema")
        try:
            references = parse_references(body.get("references"))
        except (KeyError, TypeError, ValueError):
            raise InvalidSchema("references: each needs a name, a subject and a version"
                                ) from None
        return Candidate(schema_type, references,
                         parse(schema_type, text, self._resolve(references)))

    def _same(self, version: SchemaVersion, candidate: Candidate, normalize: bool) -> bool:
        if version.identity in (candidate.identity(False), candidate.identity(normalize)):
            return True
        return normalize and version.schema_type == candidate.schema_type \
            and version.references == candidate.references \
            and self._stored(version).normalized() == candidate.parsed.normalized()

    def formatted(self, version: SchemaVersion, fmt: str | None) -> str:
        """The version's schema as `?format=` asks (None: as stored)."""
        return version.schema if fmt is None else self._stored(version).formatted(fmt)

    def decode(self, version: SchemaVersion, payload: bytes) -> Any:
        """Data written with `version`'s schema (the payload after the wire format's header)."""
        return self._stored(version).decode(payload)

    def schema(self, schema_id: int) -> SchemaVersion:
        found = self.state.schema_by_id(schema_id)
        if found is None:
            raise schema_not_found(schema_id)
        return found

    def holders(self, schema_id: int, deleted: bool) -> list[SchemaVersion]:
        """The subject versions holding schema `schema_id`."""
        self.schema(schema_id)
        holders = self.state.by_id[schema_id]
        return [holders[k] for k in sorted(holders) if deleted or not holders[k].deleted]

    def all_schemas(self, prefix: str, deleted: bool, latest_only: bool) -> list[SchemaVersion]:
        found = []
        for subject in sorted(self.state.subjects):
            if subject.startswith(prefix):
                versions = self.state.versions(subject, deleted)
                found += versions[-1:] if latest_only else versions
        return found

    # --- subjects and versions ----------------------------------------------------------------

    def subjects(self, prefix: str = "", deleted: bool = False) -> list[str]:
        return [s for s in sorted(self.state.subjects)
                if s.startswith(prefix) and self.state.versions(s, deleted)]

    def versions(self, subject: str, deleted: bool = False) -> list[SchemaVersion]:
        """The subject's versions; 40401 if it has none (live ones unless `deleted`)."""
        found = self.state.versions(subject, deleted)
        if not found:
            raise subject_not_found(subject)
        return found

    def version(self, subject: str, raw: str, deleted: bool = False) -> SchemaVersion:
        number = parse_version(raw)
        versions = self.versions(subject, deleted)
        if number is None:
            return versions[-1]
        found = next((v for v in versions if v.version == number), None)
        if found is None:
            raise version_not_found(subject, number)
        return found

    def referenced_by(self, target: SchemaVersion) -> list[int]:
        """Ids of the live schemas that reference `target`."""
        return sorted({v.id for versions in self.state.subjects.values()
                       for v in versions.values() if not v.deleted
                       and any(r.subject == target.subject and r.version == target.version
                               for r in v.references)})

    def lookup(self, subject: str, body: Any, normalize: bool, deleted: bool) -> SchemaVersion:
        versions = self.versions(subject, deleted)
        candidate = self.candidate(body)
        for version in reversed(versions):
            if self._same(version, candidate, normalize):
                return version
        raise schema_not_found()

    # --- registering --------------------------------------------------------------------------

    def level(self, subject: str | None) -> str:
        return self.state.configs.get(subject) or self.state.configs.get(None) \
            or DEFAULT_COMPATIBILITY

    def mode(self, subject: str | None) -> str:
        return self.state.modes.get(subject) or self.state.modes.get(None) or DEFAULT_MODE

    def incompatibilities(self, candidate: Candidate, level: str,
                          against: Sequence[SchemaVersion]) -> list[str]:
        """Why `candidate` breaks `level` against these versions (oldest first)."""
        if level == "NONE" or not against:
            return []
        checked = against if level.endswith("_TRANSITIVE") else against[-1:]
        problems = []
        for old in reversed(checked):
            if old.schema_type != candidate.schema_type:
                problems.append(f"Incompatible because of different schema type: "
                                f"{old.schema_type} (version {old.version})")
                continue
            previous = self._stored(old)
            if not level.startswith("FORWARD"):
                problems += candidate.parsed.incompatibilities(previous)
            if not level.startswith("BACKWARD"):
                problems += previous.incompatibilities(candidate.parsed)
            if problems:
                problems.append(f"{{oldSchemaVersion: {old.version}}}, "
                                f"{{compatibility: '{level}'}}")
                break
        return problems

    async def register(self, subject: str, body: Any, normalize: bool) -> SchemaVersion:
        """A new version of `subject`, or the live version already holding this schema."""
        candidate = self.candidate(body)
        mode = self.mode(subject)
        if mode.startswith("READONLY"):
            raise not_permitted(f"Subject {subject} is in read-only mode")
        async with self.store.lock:
            live = self.state.versions(subject)
            for version in reversed(live):
                if self._same(version, candidate, normalize):
                    return version
            wanted_id, wanted_version = body.get("id"), body.get("version")
            if mode != "IMPORT":
                if wanted_id is not None and wanted_id != self.state.id_of(
                        candidate.identity(normalize)):
                    raise not_permitted(f"Subject {subject} is not in import mode")
                problems = self.incompatibilities(candidate, self.level(subject), live)
                if problems:
                    raise incompatible(subject, problems)
            identity = candidate.identity(normalize)
            schema_id = self._new_id(identity, wanted_id)
            every = self.state.versions(subject, deleted=True)
            number = int(wanted_version) if mode == "IMPORT" and wanted_version else (
                every[-1].version + 1 if every else 1)
            if any(v.version == number for v in every):
                raise not_permitted(f"Version {number} of subject {subject} already exists")
            version = SchemaVersion(subject, number, schema_id, *identity)
            await self.store.write((schema_key(subject, number), schema_value(version)))
            return version

    def _new_id(self, identity: tuple[str, str, tuple[Reference, ...]], wanted: Any) -> int:
        existing = self.state.id_of(identity)
        if wanted is None:
            return self.state.next_id if existing is None else existing
        if not isinstance(wanted, int) or wanted < 1:
            raise bad_request(f"invalid schema id {wanted!r}")
        holder = self.state.schema_by_id(wanted)
        if holder is not None and holder.identity != identity:
            raise not_permitted(f"Overwrite new schema with id {wanted} is not permitted.")
        return wanted

    # --- deleting -----------------------------------------------------------------------------

    def _check_unreferenced(self, versions: Iterable[SchemaVersion]) -> None:
        for version in versions:
            if self.referenced_by(version):
                raise reference_exists(
                    "One or more references exist to the schema {magic=1,keytype=SCHEMA,"
                    f"subject={version.subject},version={version.version}}}.")

    async def delete_subject(self, subject: str, permanent: bool) -> list[int]:
        async with self.store.lock:
            every = self.state.versions(subject, deleted=True)
            if not every:
                raise subject_not_found(subject)
            live = [v for v in every if not v.deleted]
            if permanent:
                if live:
                    raise subject_not_soft_deleted(subject)
                self._check_unreferenced(every)
                await self.store.write(*[(schema_key(subject, v.version), None) for v in every],
                                       (subject_key("DELETE_SUBJECT", subject), None))
                return [v.version for v in every]
            if not live:
                raise subject_soft_deleted(subject)
            self._check_unreferenced(live)
            await self.store.write((subject_key("DELETE_SUBJECT", subject),
                                    {"subject": subject, "version": every[-1].version}))
            return [v.version for v in live]

    async def delete_version(self, subject: str, raw: str, permanent: bool) -> int:
        number = parse_version(raw)
        async with self.store.lock:
            every = self.state.versions(subject, deleted=True)
            if not every:
                raise subject_not_found(subject)
            if number is None:  # latest: the latest live one (permanently: the latest at all)
                candidates = every if permanent else [v for v in every if not v.deleted]
                if not candidates:
                    raise subject_soft_deleted(subject)
                number = candidates[-1].version
            found = next((v for v in every if v.version == number), None)
            if found is None:
                raise version_not_found(subject, number)
            if permanent and not found.deleted:
                raise version_not_soft_deleted(subject, number)
            if not permanent and found.deleted:
                raise version_soft_deleted(subject, number)
            self._check_unreferenced([found])
            value = None if permanent else schema_value(with_deleted(found))
            await self.store.write((schema_key(subject, number), value))
            return number

    # --- config and mode ----------------------------------------------------------------------

    def subject_level(self, subject: str, default_to_global: bool) -> str:
        return _own_or_global(self.state.configs, subject, default_to_global, self.level(None),
                              subject_config_not_found)

    async def set_level(self, subject: str | None, body: Any) -> str:
        level = body.get("compatibility") if isinstance(body, dict) else None
        if not isinstance(level, str) or level.upper() not in LEVELS:
            raise invalid_compatibility_level(level)
        async with self.store.lock:
            await self.store.write((subject_key("CONFIG", subject),
                                    {"compatibilityLevel": level.upper()}))
        return level.upper()

    async def delete_level(self, subject: str | None) -> str:
        """Back to the default; returns the level that was set."""
        async with self.store.lock:
            if subject is not None and not self.state.versions(subject, deleted=True):
                raise subject_not_found(subject)
            previous = self.level(subject)
            await self.store.write((subject_key("CONFIG", subject), None))
            return previous

    def subject_mode(self, subject: str, default_to_global: bool) -> str:
        return _own_or_global(self.state.modes, subject, default_to_global, self.mode(None),
                              subject_mode_not_found)

    async def set_mode(self, subject: str | None, body: Any, force: bool) -> str:
        mode = body.get("mode") if isinstance(body, dict) else None
        if not isinstance(mode, str) or mode.upper() not in MODES:
            raise invalid_mode(mode)
        mode = mode.upper()
        async with self.store.lock:
            holding = self.subjects() if subject is None else self.state.versions(subject)
            if mode == "IMPORT" and holding and not force:
                raise not_permitted("Cannot import since found existing subjects")
            await self.store.write((subject_key("MODE", subject), {"mode": mode}))
        return mode

    async def delete_mode(self, subject: str) -> str:
        async with self.store.lock:
            previous = self.mode(subject)
            await self.store.write((subject_key("MODE", subject), None))
            return previous


def _own_or_global(table: dict[str | None, str], subject: str, default_to_global: bool,
                   global_value: str, missing: Callable[[str], RegistryError]) -> str:
    """A subject's own config or mode; the global one if asked (?defaultToGlobal), else 404."""
    if subject in table:
        return table[subject]
    if default_to_global:
        return global_value
    raise missing(subject)
