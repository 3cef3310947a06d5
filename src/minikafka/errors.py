"""Kafka error codes and the exceptions that carry them.

Storage and clients raise `KafkaError` subclasses; the broker turns their `code` into the wire error
code, so one exception means the same thing in-process and over the network.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    UNKNOWN_SERVER_ERROR = -1
    NONE = 0
    OFFSET_OUT_OF_RANGE = 1
    CORRUPT_MESSAGE = 2
    UNKNOWN_TOPIC_OR_PARTITION = 3
    INVALID_FETCH_SIZE = 4
    LEADER_NOT_AVAILABLE = 5
    NOT_LEADER_OR_FOLLOWER = 6
    REQUEST_TIMED_OUT = 7
    MESSAGE_TOO_LARGE = 10
    OFFSET_METADATA_TOO_LARGE = 12
    NETWORK_EXCEPTION = 13
    COORDINATOR_LOAD_IN_PROGRESS = 14
    COORDINATOR_NOT_AVAILABLE = 15
    NOT_COORDINATOR = 16
    INVALID_TOPIC_EXCEPTION = 17
    RECORD_LIST_TOO_LARGE = 18
    NOT_ENOUGH_REPLICAS = 19
    INVALID_REQUIRED_ACKS = 21
    ILLEGAL_GENERATION = 22
    INCONSISTENT_GROUP_PROTOCOL = 23
    INVALID_GROUP_ID = 24
    UNKNOWN_MEMBER_ID = 25
    INVALID_SESSION_TIMEOUT = 26
    REBALANCE_IN_PROGRESS = 27
    INVALID_COMMIT_OFFSET_SIZE = 28
    TOPIC_AUTHORIZATION_FAILED = 29
    GROUP_AUTHORIZATION_FAILED = 30
    CLUSTER_AUTHORIZATION_FAILED = 31
    INVALID_TIMESTAMP = 32
    UNSUPPORTED_SASL_MECHANISM = 33
    ILLEGAL_SASL_STATE = 34
    UNSUPPORTED_VERSION = 35
    TOPIC_ALREADY_EXISTS = 36
    INVALID_PARTITIONS = 37
    INVALID_REPLICATION_FACTOR = 38
    INVALID_REPLICA_ASSIGNMENT = 39
    INVALID_CONFIG = 40
    NOT_CONTROLLER = 41
    INVALID_REQUEST = 42
    UNSUPPORTED_FOR_MESSAGE_FORMAT = 43
    POLICY_VIOLATION = 44
    OUT_OF_ORDER_SEQUENCE_NUMBER = 45
    DUPLICATE_SEQUENCE_NUMBER = 46
    INVALID_PRODUCER_EPOCH = 47
    INVALID_TXN_STATE = 48
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = 53
    INVALID_PRODUCER_ID_MAPPING = 49
    INVALID_TRANSACTION_TIMEOUT = 50
    CONCURRENT_TRANSACTIONS = 51
    SECURITY_DISABLED = 54
    OPERATION_NOT_ATTEMPTED = 55
    KAFKA_STORAGE_ERROR = 56
    SASL_AUTHENTICATION_FAILED = 58
    RESOURCE_NOT_FOUND = 91
    DUPLICATE_RESOURCE = 92
    UNACCEPTABLE_CREDENTIAL = 93
    UNKNOWN_PRODUCER_ID = 59
    REASSIGNMENT_IN_PROGRESS = 60
    GROUP_ID_NOT_FOUND = 69
    FETCH_SESSION_ID_NOT_FOUND = 70
    INVALID_FETCH_SESSION_EPOCH = 71
    NON_EMPTY_GROUP = 68
    INVALID_RECORD = 87
    MEMBER_ID_REQUIRED = 79
    FENCED_INSTANCE_ID = 82
    UNKNOWN_LEADER_EPOCH = 75
    FENCED_LEADER_EPOCH = 74
    OFFSET_NOT_AVAILABLE = 78
    UNSUPPORTED_COMPRESSION_TYPE = 76
    PREFERRED_LEADER_NOT_AVAILABLE = 80
    GROUP_MAX_SIZE_REACHED = 81
    UNSTABLE_OFFSET_COMMIT = 88
    THROTTLING_QUOTA_EXCEEDED = 89
    PRODUCER_FENCED = 90
    TRANSACTIONAL_ID_NOT_FOUND = 105
    INCONSISTENT_TOPIC_ID = 103
    FETCH_SESSION_TOPIC_ID_ERROR = 106
    UNKNOWN_TOPIC_ID = 100
    GROUP_SUBSCRIBED_TO_TOPIC = 86
    UNSUPPORTED_ENDPOINT_TYPE = 114


class KafkaError(Exception):
    """An error with a Kafka error code; `str()` is a one-line message for humans."""

    code: ErrorCode = ErrorCode.UNKNOWN_SERVER_ERROR

    def __init__(self, message: str = "", code: ErrorCode | None = None) -> None:
        super().__init__(message or self.__class__.__name__)
        if code is not None:
            self.code = code


class CorruptRecordError(KafkaError):
    code = ErrorCode.CORRUPT_MESSAGE


class UnknownTopicOrPartitionError(KafkaError):
    code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


class TopicAlreadyExistsError(KafkaError):
    code = ErrorCode.TOPIC_ALREADY_EXISTS


class InvalidTopicError(KafkaError):
    code = ErrorCode.INVALID_TOPIC_EXCEPTION


class InvalidPartitionsError(KafkaError):
    code = ErrorCode.INVALID_PARTITIONS


class PolicyViolationError(KafkaError):
    code = ErrorCode.POLICY_VIOLATION


class InvalidConfigError(KafkaError):
    code = ErrorCode.INVALID_CONFIG


class InvalidTimestampError(KafkaError):
    """A CreateTime record outside message.timestamp.before/after.max.ms of the broker's clock."""

    code = ErrorCode.INVALID_TIMESTAMP


class NotEnoughReplicasError(KafkaError):
    code = ErrorCode.NOT_ENOUGH_REPLICAS


class InvalidRecordError(KafkaError):
    """A batch that parses but breaks a rule (e.g. two batches in one produce v3+ partition)."""

    code = ErrorCode.INVALID_RECORD


class UnsupportedCompressionTypeError(KafkaError):
    """A batch whose attributes name no codec Kafka knows (0-4)."""

    code = ErrorCode.UNSUPPORTED_COMPRESSION_TYPE


class InvalidTxnStateError(KafkaError):
    """A batch that breaks its producer's transaction state (a plain batch from a producer whose
    transaction is ongoing)."""

    code = ErrorCode.INVALID_TXN_STATE


class ProducerFencedError(KafkaError):
    """A newer instance with the same transactional id took over: this producer may not write
    or end transactions any more."""

    code = ErrorCode.PRODUCER_FENCED


class OffsetOutOfRangeError(KafkaError):
    code = ErrorCode.OFFSET_OUT_OF_RANGE


class MessageTooLargeError(KafkaError):
    code = ErrorCode.MESSAGE_TOO_LARGE


class KafkaStorageError(KafkaError):
    """A write to the data directory failed (disk full, quota, I/O error): the change it was
    part of did not happen, and the log is as it was before it."""

    code = ErrorCode.KAFKA_STORAGE_ERROR


class DataDirLockedError(KafkaError):
    """The data directory is held by a broker (or, for a broker, by embedded clients)."""
