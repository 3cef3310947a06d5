"""Topic configuration (Kafka's names and defaults) and the flush policy."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
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


# Kafka config name -> (attribute, parser, minimum)
_KAFKA_NAMES: dict[str, tuple[str, type, int]] = {
    "retention.ms": ("retention_ms", int, -1),
    "retention.bytes": ("retention_bytes", int, -1),
    "segment.bytes": ("segment_bytes", int, 14),
    "segment.ms": ("segment_ms", int, 1),
    "segment.index.bytes": ("segment_index_bytes", int, 8),
    "index.interval.bytes": ("index_interval_bytes", int, 0),
    "max.message.bytes": ("max_message_bytes", int, 0),
    "cleanup.policy": ("cleanup_policy", str, 0),
    "message.timestamp.type": ("message_timestamp_type", str, 0),
}
_CHOICES = {
    "cleanup_policy": {"delete", "compact", "compact,delete", "delete,compact"},
    "message_timestamp_type": {"CreateTime", "LogAppendTime"},
}


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """Per-topic settings, persisted with the topic. Defaults are Kafka's."""

    partitions: int = 1
    retention_ms: int = 7 * 24 * 3600 * 1000
    retention_bytes: int = -1
    segment_bytes: int = 1024 * 1024 * 1024
    segment_ms: int = 7 * 24 * 3600 * 1000
    segment_index_bytes: int = 10 * 1024 * 1024
    index_interval_bytes: int = 4096
    max_message_bytes: int = 1048588
    cleanup_policy: str = "delete"
    message_timestamp_type: str = "CreateTime"

    def with_kafka_configs(self, configs: dict[str, Any], delete: tuple[str, ...] = ()
                           ) -> TopicConfig:
        """A copy with Kafka-named configs applied; unknown names and bad values raise."""
        changes: dict[str, Any] = {}
        for name in delete:
            attr = self._attr(name)
            changes[attr] = next(f.default for f in fields(TopicConfig) if f.name == attr)
        for name, raw in configs.items():
            attr = self._attr(name)
            _, kind, minimum = _KAFKA_NAMES[name]
            try:
                value = kind(raw)
            except (TypeError, ValueError):
                raise InvalidConfigError(f"invalid value {raw!r} for {name}") from None
            if kind is int and value < minimum:
                raise InvalidConfigError(f"{name} must be at least {minimum}, got {value}")
            if attr in _CHOICES and value not in _CHOICES[attr]:
                raise InvalidConfigError(f"invalid value {raw!r} for {name}")
            changes[attr] = value
        return replace(self, **changes)

    @staticmethod
    def _attr(name: str) -> str:
        if name not in _KAFKA_NAMES:
            raise InvalidConfigError(f"unknown topic config {name!r}")
        return _KAFKA_NAMES[name][0]

    def as_kafka_configs(self) -> dict[str, str]:
        return {name: str(getattr(self, attr)) for name, (attr, _, _) in _KAFKA_NAMES.items()}

    def defaults(self) -> set[str]:
        """Kafka names whose value is the default (DescribeConfigs reports their source)."""
        base = TopicConfig()
        return {n for n, (a, _, _) in _KAFKA_NAMES.items() if getattr(self, a) == getattr(base, a)}

    def to_json(self) -> dict[str, Any]:
        return {"partitions": self.partitions, "configs": self.as_kafka_configs()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TopicConfig:
        return cls(partitions=int(data["partitions"])).with_kafka_configs(data.get("configs", {}))


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
