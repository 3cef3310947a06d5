"""The storage engine: Kafka's partitioned, segmented log on local disk. No network here."""

from .config import FlushPolicy, TopicConfig, validate_topic_name
from .manager import DataDirLock, LogManager
from .offsets import OffsetAndMetadata, OffsetStore
from .partition import LEADER_EPOCH, AppendInfo, Partition
from .producer_state import InvalidProducerEpochError, OutOfOrderSequenceError, ProducerInfo
from .segment import FileSlice, LogSegment

__all__ = [
    "LEADER_EPOCH",
    "AppendInfo",
    "DataDirLock",
    "FileSlice",
    "FlushPolicy",
    "InvalidProducerEpochError",
    "LogManager",
    "LogSegment",
    "OffsetAndMetadata",
    "OffsetStore",
    "OutOfOrderSequenceError",
    "Partition",
    "ProducerInfo",
    "TopicConfig",
    "validate_topic_name",
]
