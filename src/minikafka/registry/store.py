"""The registry's state and its log: the compacted topic `_schemas`, in the record format
Confluent's Schema Registry writes, so either can read the other's topic.

Every key is a JSON object with a `keytype` and a `magic` byte:
  SCHEMA          {"keytype":"SCHEMA","subject":S,"version":V,"magic":1}
                  value {"subject","version","id","schemaType"?,"references"?,"schema","deleted"}
                  (a null value: the version was deleted permanently)
  CONFIG / MODE   {"keytype":"CONFIG","subject":S or null,"magic":0}
                  value {"compatibilityLevel":L} / {"mode":M} (null: back to the default)
  DELETE_SUBJECT  {"keytype":"DELETE_SUBJECT","subject":S,"magic":0}
                  value {"subject":S,"version":V}: versions up to V are soft deleted
  NOOP            {"keytype":"NOOP","magic":0}: nothing

The state is rebuilt by reading the topic from its start when the broker starts, so subjects,
versions and ids survive restarts; a record that is not one of these is logged and skipped.
Writes go through the broker's service layer (`ops.produce`, as Produce with acks=all), one at
a time (`lock`), and change the state only once appended.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..broker import ops
from ..broker.context import BrokerContext
from ..errors import CorruptRecordError, KafkaError, TopicAlreadyExistsError
from ..records import decode_batch, encode_batch, iter_batches
from .errors import store_error

log = logging.getLogger("minikafka.registry")

TOPIC = "_schemas"
TOPIC_CONFIGS = {"cleanup.policy": "compact"}
READ_BYTES = 1024 * 1024
DEFAULT_COMPATIBILITY = "BACKWARD"
DEFAULT_MODE = "READWRITE"


@dataclass(frozen=True, slots=True)
class Reference:
    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One version of a subject, as a SCHEMA record holds it."""

    subject: str
    version: int
    id: int
    schema_type: str
    schema: str
    references: tuple[Reference, ...] = ()
    deleted: bool = False

    @property
    def identity(self) -> tuple[str, str, tuple[Reference, ...]]:
        """What makes two registrations the same schema (and so the same id)."""
        return self.schema_type, self.schema, self.references

    def schema_json(self) -> dict[str, Any]:
        """The schema's fields as Confluent answers them (AVRO and no references left out)."""
        out: dict[str, Any] = {}
        if self.schema_type != "AVRO":
            out["schemaType"] = self.schema_type
        if self.references:
            out["references"] = [ref.to_json() for ref in self.references]
        out["schema"] = self.schema
        return out

    def to_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "version": self.version, "id": self.id,
                **self.schema_json()}


def schema_key(subject: str, version: int) -> dict[str, Any]:
    return {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1}


def subject_key(keytype: str, subject: str | None) -> dict[str, Any]:
    """The key of a CONFIG, MODE (subject None: the global one) or DELETE_SUBJECT record."""
    return {"keytype": keytype, "subject": subject, "magic": 0}


def schema_value(version: SchemaVersion) -> dict[str, Any]:
    return {**version.to_json(), "deleted": version.deleted}


def parse_references(raw: Any) -> tuple[Reference, ...]:
    return tuple(Reference(str(r["name"]), str(r["subject"]), int(r["version"]))
                 for r in raw or ())


@dataclass
class RegistryState:
    """Subjects, their versions, configs and modes, as the records so far leave them."""

    subjects: dict[str, dict[int, SchemaVersion]] = field(default_factory=dict)
    configs: dict[str | None, str] = field(default_factory=dict)  # None: the global level
    modes: dict[str | None, str] = field(default_factory=dict)
    by_id: dict[int, dict[tuple[str, int], SchemaVersion]] = field(default_factory=dict)
    next_id: int = 1

    def apply(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        """One record of `_schemas`; KeyError, TypeError or ValueError if it is not one."""
        keytype = key["keytype"]
        if keytype == "SCHEMA":
            subject, number = str(key["subject"]), int(key["version"])
            if value is None:
                self._drop(subject, number)
            else:
                self._put(SchemaVersion(
                    str(value["subject"]), int(value["version"]), int(value["id"]),
                    str(value.get("schemaType") or "AVRO"), str(value["schema"]),
                    parse_references(value.get("references")), bool(value.get("deleted", False))))
        elif keytype in ("CONFIG", "MODE"):
            table, name = ((self.configs, "compatibilityLevel") if keytype == "CONFIG"
                           else (self.modes, "mode"))
            scope = None if key.get("subject") is None else str(key["subject"])
            if value is None:
                table.pop(scope, None)
            else:
                table[scope] = str(value.get(name) or value.get("compatibility")).upper()
        elif keytype == "DELETE_SUBJECT":
            if value is not None:
                upto = int(value["version"])
                for version in list(self.subjects.get(str(key["subject"]), {}).values()):
                    if version.version <= upto and not version.deleted:
                        self._put(with_deleted(version))
        elif keytype != "NOOP":
            raise ValueError(f"unknown keytype {keytype!r}")

    def _put(self, version: SchemaVersion) -> None:
        self.subjects.setdefault(version.subject, {})[version.version] = version
        self.by_id.setdefault(version.id, {})[(version.subject, version.version)] = version
        self.next_id = max(self.next_id, version.id + 1)

    def _drop(self, subject: str, number: int) -> None:
        versions = self.subjects.get(subject, {})
        gone = versions.pop(number, None)
        if not versions:
            self.subjects.pop(subject, None)
        if gone is not None:
            same = self.by_id[gone.id]
            same.pop((subject, number), None)
            if not same:
                del self.by_id[gone.id]

    def versions(self, subject: str, deleted: bool = False) -> list[SchemaVersion]:
        """The subject's versions in order, the soft-deleted ones only if `deleted`."""
        found = self.subjects.get(subject, {})
        return [found[n] for n in sorted(found) if deleted or not found[n].deleted]

    def schema_by_id(self, schema_id: int) -> SchemaVersion | None:
        """One version holding schema `schema_id` (any: they hold the same schema)."""
        holders = self.by_id.get(schema_id)
        return next(iter(holders.values())) if holders else None

    def id_of(self, identity: tuple[str, str, tuple[Reference, ...]]) -> int | None:
        for schema_id, holders in self.by_id.items():
            if next(iter(holders.values())).identity == identity:
                return schema_id
        return None


def with_deleted(version: SchemaVersion) -> SchemaVersion:
    return SchemaVersion(version.subject, version.version, version.id, version.schema_type,
                         version.schema, version.references, True)


class SchemaStore:
    """The state, kept in `_schemas` through the broker's own service layer."""

    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx
        self.state = RegistryState()
        self.lock = asyncio.Lock()  # one change at a time: read, decide, write, apply

    def load(self) -> None:
        """Rebuild the state from `_schemas` (the topic is made at the first write)."""
        applied = 0
        for offset, key, value in self._records():
            try:
                self.state.apply(_json_object(key), None if value is None else
                                 _json_object(value))
                applied += 1
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                log.warning("%s offset %d: skipped a record that is not a schema registry "
                            "record (%s): key %r", TOPIC, offset, exc, (key or b"")[:200])
        if applied:
            log.info("schema registry: %d record(s) read from %s, %d subject(s)", applied,
                     TOPIC, len(self.state.subjects))

    def _records(self) -> Iterator[tuple[int, bytes | None, bytes | None]]:
        if not self.ctx.log.exists(TOPIC):
            return
        partition = self.ctx.log.partition(TOPIC, 0)
        offset = partition.log_start_offset
        while offset < partition.high_watermark:
            view = memoryview(partition.read_batches(offset, READ_BYTES))
            start = offset
            for pos, header in iter_batches(view, validate=False):
                try:
                    records = decode_batch(view, pos).records
                except CorruptRecordError as exc:
                    log.warning("%s offsets %d-%d: skipped a damaged batch (%s)", TOPIC,
                                header.base_offset, header.last_offset, exc)
                    records = []
                for record in records:
                    if record.offset >= offset:
                        yield record.offset, record.key, record.value
                offset = max(offset, header.next_offset)
            if offset == start:
                return

    async def write(self, *records: tuple[dict[str, Any], dict[str, Any] | None]) -> None:
        """Append these records (key, value or None for a tombstone) in one batch, then apply
        them. The caller holds `lock`. A refused write is Confluent's 50001 store error."""
        batch = encode_batch([(json.dumps(key, separators=(",", ":")).encode(),
                               None if value is None
                               else json.dumps(value, separators=(",", ":")).encode(), (), None)
                              for key, value in records])
        try:
            if not self.ctx.log.exists(TOPIC):
                with contextlib.suppress(TopicAlreadyExistsError):
                    await ops.create_topic(self.ctx, TOPIC, 1, TOPIC_CONFIGS)
            await ops.produce(self.ctx, TOPIC, 0, batch)
        except KafkaError as exc:
            raise store_error(str(exc)) from exc
        for key, value in records:
            self.state.apply(key, value)


def _json_object(raw: bytes | None) -> dict[str, Any]:
    found = json.loads(raw or b"")
    if not isinstance(found, dict):
        raise ValueError("not a JSON object")
    return found
