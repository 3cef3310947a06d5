"""Topic configuration (Kafka's names and defaults) and the flush policy."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import InvalidConfigError, InvalidTopicError

MAX_TOPIC_NAME = 249
_TOPIC_CHARS = re.compile(r"^[a-zA-Z0-9._-]+$")


def validate_topic_name(name: str) -> None:
    """Kafka's rules: 1-249 chars of [a-zA-Z0-9._-], not '.' or '..'."""
    if not name:
        raise InvalidTopicError("topic name is empty")
    if name in (".", ".."):
        raise InvalidTopicError(f"topic name {name!r} is not allowed")
    if len(name) > MAX_TOPIC_NAME:
        raise InvalidTopicError(f"topic name is {len(name)} characters long, the limit is 249")
    if not _TOPIC_CHARS.match(name):
        raise InvalidTopicError(
            f"topic name {name!r} has characters outside [a-zA-Z0-9._-]"
        )


def valid_topic_name(name: str) -> bool:
    try:
        validate_topic_name(name)
    except InvalidTopicError:
        return False
    return True


def check_collision(name: str, existing: Iterable[str]) -> None:
    """InvalidTopicError if `name` collides with an existing topic (Kafka's Topic.hasCollision:
    the same once '.' and '_' are taken as one, as metric names do)."""
    folded = name.replace(".", "_")
    for other in existing:
        if other != name and other.replace(".", "_") == folded:
            raise InvalidTopicError(f"topic {name!r} collides with existing topic {other!r}")


LONG_MAX = (1 << 63) - 1
INT_MAX = (1 << 31) - 1
_TYPE_CODES = {"BOOLEAN": 1, "STRING": 2, "INT": 3, "LONG": 5, "DOUBLE": 6, "LIST": 7}
_RANGES = {"INT": (-(1 << 31), INT_MAX), "LONG": (-(1 << 63), LONG_MAX)}
_THROTTLED = re.compile(r"^\d+:\d+$")


@dataclass(frozen=True, slots=True)
class ConfigKey:
    """One topic config as Kafka's LogConfig defines it. `acted_on`: this broker does what it
    says (the rest are validated, stored and described, meaningless or not built on one node)."""

    name: str
    type: str  # Kafka's ConfigDef.Type: BOOLEAN, STRING, INT, LONG, DOUBLE, LIST
    default: Any
    doc: str
    acted_on: bool = False
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    broker_name: str | None = None  # the broker config it overrides (its synonym)
    check: Callable[[Any], str | None] | None = None  # a further rule: the complaint, or None

    @property
    def attr(self) -> str:
        return self.name.replace(".", "_")

    @property
    def type_code(self) -> int:
        """DescribeConfigs' ConfigType."""
        return _TYPE_CODES[self.type]

    def parse(self, raw: Any) -> Any:
        """The value of `raw` (text or native), or InvalidConfigError naming this config."""
        try:
            value = self._convert(raw)
        except (TypeError, ValueError):
            raise InvalidConfigError(f"invalid value {raw!r} for {self.name}: expected "
                                     f"{self.type.lower()}") from None
        low, high = _RANGES.get(self.type, (self.low, self.high))
        low = low if self.low is None else self.low
        high = high if self.high is None else self.high
        if (low is not None and value < low) or (high is not None and value > high):
            raise InvalidConfigError(f"invalid value {raw!r} for {self.name}: must be in "
                                     f"[{low}, {high}]")
        items = value.split(",") if self.type == "LIST" else [value]
        if self.choices and not all(item in self.choices for item in items):
            raise InvalidConfigError(f"invalid value {raw!r} for {self.name}: must be one of "
                                     f"{', '.join(self.choices)}")
        complaint = self.check(value) if self.check else None
        if complaint:
            raise InvalidConfigError(f"invalid value {raw!r} for {self.name}: {complaint}")
        return value

    def _convert(self, raw: Any) -> Any:
        if self.type == "BOOLEAN":
            text = str(raw).strip().lower()
            if isinstance(raw, bool) or text in ("true", "false"):
                return raw if isinstance(raw, bool) else text == "true"
            raise ValueError(raw)
        if self.type in ("INT", "LONG"):
            if isinstance(raw, (float, bool)):
                raise ValueError(raw)
            return int(str(raw).strip())
        if self.type == "DOUBLE":
            return float(str(raw).strip())
        if self.type == "LIST":
            return ",".join(item.strip() for item in str(raw).split(",") if item.strip())
        return str(raw).strip()

    def text(self, value: Any) -> str:
        """`value` as Kafka shows it."""
        return str(value).lower() if self.type == "BOOLEAN" else str(value)


def _throttled_replicas(value: str) -> str | None:
    """Kafka's ThrottledReplicaListValidator: '*' or partition:broker pairs."""
    if value == "*" or all(_THROTTLED.match(item) for item in value.split(",") if item):
        return None
    return "expected '*' or a list of partition:broker pairs"


def _no_tiered_storage(value: bool) -> str | None:
    return "tiered storage is disabled on this broker" if value else None


def _gzip_level(value: int) -> str | None:
    return None if value == -1 or 1 <= value <= 9 else "must be -1 or in [1, 9]"


_DAY, _WEEK = 86_400_000, 7 * 86_400_000
_COMPRESSION = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")
_key = ConfigKey
TOPIC_CONFIGS: dict[str, ConfigKey] = {key.name: key for key in (
    _key("cleanup.policy", "LIST", "delete", "'delete' drops old segments by retention; "
         "'compact' keeps the latest record per key (retention applies only with delete)",
         True, choices=("compact", "delete"), broker_name="log.cleanup.policy"),
    _key("compression.type", "STRING", "producer", "codec batches are stored in: another "
         "codec's batches are recompressed on append; 'producer' keeps the producer's",
         True, choices=_COMPRESSION, broker_name="compression.type"),
    _key("compression.gzip.level", "INT", -1, "gzip level when compression.type is gzip "
         "(stored only: the codec's default level is used)",
         check=_gzip_level, broker_name="compression.gzip.level"),
    _key("compression.lz4.level", "INT", 9, "lz4 level when compression.type is lz4 (stored "
         "only)", low=1, high=17, broker_name="compression.lz4.level"),
    _key("compression.zstd.level", "INT", 3, "zstd level when compression.type is zstd "
         "(stored only)", low=-131072, high=22, broker_name="compression.zstd.level"),
    _key("delete.retention.ms", "LONG", _DAY, "how long tombstones are kept on a compacted "
         "topic, after the cleaner first cleaned them", True, low=0,
         broker_name="log.cleaner.delete.retention.ms"),
    _key("file.delete.delay.ms", "LONG", 60_000, "wait before a deleted segment's files go",
         low=0, broker_name="log.segment.delete.delay.ms"),
    _key("flush.messages", "LONG", LONG_MAX, "fsync after this many messages (the broker's "
         "flush policy decides here)", low=1, broker_name="log.flush.interval.messages"),
    _key("flush.ms", "LONG", LONG_MAX, "fsync after this long (the broker's flush policy "
         "decides here)", low=0, broker_name="log.flush.interval.ms"),
    _key("follower.replication.throttled.replicas", "LIST", "", "replicas throttled on the "
         "follower side (no replication on one node)", check=_throttled_replicas),
    _key("leader.replication.throttled.replicas", "LIST", "", "replicas throttled on the "
         "leader side (no replication on one node)", check=_throttled_replicas),
    _key("index.interval.bytes", "INT", 4096, "bytes between offset index entries", True,
         low=0, broker_name="log.index.interval.bytes"),
    _key("local.retention.bytes", "LONG", -2, "local retention with tiered storage (-2: "
         "retention.bytes)", low=-2, broker_name="log.local.retention.bytes"),
    _key("local.retention.ms", "LONG", -2, "local retention with tiered storage (-2: "
         "retention.ms)", low=-2, broker_name="log.local.retention.ms"),
    _key("max.compaction.lag.ms", "LONG", LONG_MAX, "longest a record stays uncompacted (the "
         "active segment also rolls at this age)", True, low=1,
         broker_name="log.cleaner.max.compaction.lag.ms"),
    _key("max.message.bytes", "INT", 1048588, "largest record batch accepted", True, low=0,
         broker_name="message.max.bytes"),
    _key("message.timestamp.after.max.ms", "LONG", LONG_MAX, "how far past the broker's "
         "clock a CreateTime record's timestamp may be (INVALID_TIMESTAMP otherwise)", True,
         low=0, broker_name="log.message.timestamp.after.max.ms"),
    _key("message.timestamp.before.max.ms", "LONG", LONG_MAX, "how far before the broker's "
         "clock a CreateTime record's timestamp may be (INVALID_TIMESTAMP otherwise)", True,
         low=0, broker_name="log.message.timestamp.before.max.ms"),
    _key("message.timestamp.difference.max.ms", "LONG", LONG_MAX, "deprecated (removed in "
         "Kafka 4) for the before/after pair; stored only", low=0,
         broker_name="log.message.timestamp.difference.max.ms"),
    _key("message.timestamp.type", "STRING", "CreateTime", "whether records keep the "
         "producer's timestamp or get the broker's", True,
         choices=("CreateTime", "LogAppendTime"), broker_name="log.message.timestamp.type"),
    _key("min.cleanable.dirty.ratio", "DOUBLE", 0.5, "share of uncompacted log that makes a "
         "compacted topic eligible for cleaning", True, low=0, high=1,
         broker_name="log.cleaner.min.cleanable.ratio"),
    _key("min.compaction.lag.ms", "LONG", 0, "shortest a record stays uncompacted", True,
         low=0,
         broker_name="log.cleaner.min.compaction.lag.ms"),
    _key("min.insync.replicas", "INT", 1, "replicas that must have a write for acks=all; with "
         "one replica, above 1 every acks=all produce gets NOT_ENOUGH_REPLICAS", True, low=1,
         broker_name="min.insync.replicas"),
    _key("preallocate", "BOOLEAN", False, "preallocate segment files",
         broker_name="log.preallocate"),
    _key("remote.storage.enable", "BOOLEAN", False, "tiered storage (not available here)",
         check=_no_tiered_storage),
    _key("remote.log.copy.disable", "BOOLEAN", False, "stop copying to tiered storage"),
    _key("remote.log.delete.on.disable", "BOOLEAN", False, "delete remote data when tiered "
         "storage is turned off"),
    _key("retention.bytes", "LONG", -1, "size past which the oldest segments are deleted "
         "(-1: no limit)", True, low=-1, broker_name="log.retention.bytes"),
    _key("retention.ms", "LONG", _WEEK, "age past which segments are deleted (-1: forever)",
         True, low=-1, broker_name="log.retention.ms"),
    _key("segment.bytes", "INT", 1 << 30, "size at which a new segment is started", True,
         low=14, broker_name="log.segment.bytes"),
    _key("segment.index.bytes", "INT", 10 * 1024 * 1024, "size of a segment's index files",
         True, low=8, broker_name="log.index.size.max.bytes"),
    _key("segment.jitter.ms", "LONG", 0, "random jitter off segment.ms", low=0,
         broker_name="log.roll.jitter.ms"),
    _key("segment.ms", "LONG", _WEEK, "age (by record timestamps) at which a new segment is "
         "started", True, low=1, broker_name="log.roll.ms"),
    _key("unclean.leader.election.enable", "BOOLEAN", False, "let an out-of-sync replica lead "
         "(no replicas on one node)", broker_name="unclean.leader.election.enable"),
)}
_DEFAULTS = {name: key.default for name, key in TOPIC_CONFIGS.items()}


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """Per-topic settings, persisted with the topic: the overrides set on it (parsed values by
    Kafka name) over the broker's values for topics (`broker_defaults`, not persisted: as in
    Kafka, a broker setting such as log.cleaner.delete.retention.ms is the default of every
    topic that does not set its own) over Kafka's defaults, and typed attributes for those the
    log acts on."""

    partitions: int = 1
    overrides: Mapping[str, Any] = field(default_factory=dict)
    topic_id: uuid.UUID | None = None  # None: a topic from before ids (given one on load)
    broker_defaults: Mapping[str, Any] = field(default_factory=dict)  # by topic config name
    retention_ms: int = field(init=False)
    retention_bytes: int = field(init=False)
    segment_bytes: int = field(init=False)
    segment_ms: int = field(init=False)
    segment_index_bytes: int = field(init=False)
    index_interval_bytes: int = field(init=False)
    max_message_bytes: int = field(init=False)
    cleanup_policy: str = field(init=False)
    compression_type: str = field(init=False)
    message_timestamp_type: str = field(init=False)
    message_timestamp_before_max_ms: int = field(init=False)
    message_timestamp_after_max_ms: int = field(init=False)
    min_insync_replicas: int = field(init=False)
    delete_retention_ms: int = field(init=False)
    min_compaction_lag_ms: int = field(init=False)
    max_compaction_lag_ms: int = field(init=False)
    min_cleanable_dirty_ratio: float = field(init=False)
    # Kafka's LogConfig.maxSegmentMs: a compacted topic's active segment also rolls at
    # max.compaction.lag.ms, so that it becomes cleanable in time (KIP-354)
    roll_ms: int = field(init=False)
    # CreateTime timestamps are checked against the clock (a window narrower than int64's)
    checks_timestamps: bool = field(init=False)

    def __post_init__(self) -> None:
        for key in TOPIC_CONFIGS.values():
            if key.acted_on:
                object.__setattr__(self, key.attr, self.overrides.get(
                    key.name, self.broker_defaults.get(key.name, key.default)))
        object.__setattr__(self, "roll_ms", min(self.segment_ms, self.max_compaction_lag_ms)
                           if self.compacts else self.segment_ms)
        object.__setattr__(self, "checks_timestamps", self.message_timestamp_type == "CreateTime"
                           and min(self.message_timestamp_before_max_ms,
                                   self.message_timestamp_after_max_ms) < LONG_MAX)

    @property
    def compacts(self) -> bool:
        """The log cleaner compacts the topic (cleanup.policy includes compact)."""
        return "compact" in self.cleanup_policy.split(",")

    @property
    def deletes(self) -> bool:
        """Retention applies (cleanup.policy includes delete)."""
        return "delete" in self.cleanup_policy.split(",")

    def with_kafka_configs(self, configs: Mapping[str, Any], delete: Iterable[str] = ()
                           ) -> TopicConfig:
        """A copy with Kafka-named configs applied and `delete`d ones back to their defaults;
        unknown names and bad values raise InvalidConfigError naming the config."""
        overrides = dict(self.overrides)
        for name in delete:
            _key_of(name)
            overrides.pop(name, None)
        for name, raw in configs.items():
            overrides[name] = _key_of(name).parse(raw)
        return replace(self, overrides=overrides)

    def as_kafka_configs(self) -> dict[str, str]:
        """Every config's current value as text, by Kafka name."""
        values = {**_DEFAULTS, **self.broker_defaults, **self.overrides}
        return {name: key.text(values[name]) for name, key in TOPIC_CONFIGS.items()}

    def defaults(self) -> set[str]:
        """Kafka names not overridden on this topic (DescribeConfigs reports their source)."""
        return set(TOPIC_CONFIGS) - set(self.overrides)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "partitions": self.partitions,
            "overrides": {n: TOPIC_CONFIGS[n].text(v) for n, v in self.overrides.items()}}
        if self.topic_id is not None:
            data["topic_id"] = format_topic_id(self.topic_id)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], broker_defaults: Mapping[str, Any] | None = None
                  ) -> TopicConfig:
        """Also reads the older form, which listed every config ("configs") and not only the
        overrides: values equal to Kafka's default are taken as not set."""
        overrides = data.get("overrides")
        if overrides is None:
            base = TopicConfig().as_kafka_configs()
            overrides = {n: v for n, v in data.get("configs", {}).items() if base.get(n) != v}
        topic_id = data.get("topic_id")
        return cls(partitions=int(data["partitions"]),
                   topic_id=None if topic_id is None else parse_topic_id(topic_id),
                   broker_defaults=broker_defaults or {}).with_kafka_configs(overrides)


def new_topic_id() -> uuid.UUID:
    """Kafka's Uuid.randomUuid: random, and never one whose text starts with '-' (it would read
    as a command-line option) nor the reserved zero and metadata-topic ids."""
    while True:
        candidate = uuid.uuid4()
        if candidate.int > 1 and not format_topic_id(candidate).startswith("-"):
            return candidate


def format_topic_id(topic_id: uuid.UUID) -> str:
    """Kafka's text form: URL-safe base64 of the 16 bytes, unpadded."""
    return base64.urlsafe_b64encode(topic_id.bytes).decode().rstrip("=")


def parse_topic_id(text: str) -> uuid.UUID:
    return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=="))


def _key_of(name: str) -> ConfigKey:
    key = TOPIC_CONFIGS.get(name)
    if key is None:
        raise InvalidConfigError(f"unknown topic config {name!r}")
    return key


@dataclass(frozen=True, slots=True)
class FlushPolicy:
    """When appended data is fsynced: after every append (`always`, group-committed), every
    `interval_ms`, or `never` (left to the OS; still survives a process crash)."""

    mode: str = "never"
    interval_ms: int = 0

    @classmethod
    def parse(cls, text: str | FlushPolicy) -> FlushPolicy:
        if isinstance(text, FlushPolicy):
            return text
        value = text.strip().lower()
        if value in ("always", "never"):
            return cls(value)
        match = re.fullmatch(r"(?:interval:)?(\d+)\s*(ms|s)?", value)
        if not match:
            raise ValueError(f"flush policy must be 'always', 'never' or an interval like "
                             f"'100ms' / '1s', got {text!r}")
        amount = int(match.group(1)) * (1000 if match.group(2) == "s" else 1)
        if amount <= 0:
            raise ValueError("flush interval must be positive")
        return cls("interval", amount)

    def __str__(self) -> str:
        return f"{self.interval_ms}ms" if self.mode == "interval" else self.mode
