"""Small pieces the embedded producer and consumer share."""

from __future__ import annotations

from typing import Any

from ..errors import TopicAlreadyExistsError
from ..log import LogManager, TopicConfig
from ..records import Headers

# (key, value, headers, timestamp)
RecordLike = tuple[Any, Any, Headers, int | None]


def as_bytes(data: bytes | str | None) -> bytes | None:
    if data is None or isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    return bytes(data)


def auto_create(log: LogManager, topic: str, enabled: bool, partitions: int) -> TopicConfig:
    """The topic's config, creating the topic first if allowed (as Kafka's auto-create does)."""
    if enabled and not log.exists(topic):
        try:
            return log.create_topic(topic, partitions)
        except TopicAlreadyExistsError:
            pass  # another process won the race
    return log.topic_config(topic)
