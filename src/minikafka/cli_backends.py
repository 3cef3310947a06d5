"""Where the CLI's topics / produce / consume commands act: a data directory in-process, or any
Kafka-compatible broker over the wire (through confluent-kafka, so ours and Apache Kafka alike)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from .client import Consumer, Message, Producer
from .errors import ErrorCode, KafkaError
from .log import LogManager

RawRecord = tuple[bytes | None, bytes]  # key, value


@dataclass(slots=True)
class PartitionInfo:
    partition: int
    start_offset: int
    end_offset: int
    size: int | None = None  # bytes on disk, when the backend can see the disk


@dataclass(slots=True)
class TopicInfo:
    name: str
    partitions: list[PartitionInfo]
    configs: dict[str, str] = field(default_factory=dict)  # non-default configs only


@dataclass(slots=True)
class ConsumeOptions:
    group: str | None = None
    from_beginning: bool = False
    exit_at_end: bool = False
    max_messages: int | None = None


@dataclass(slots=True)
class ProduceOptions:
    partition: int | None = None
    compression: str | None = None
    partitioner: str = "murmur2"
    partitions: int = 1  # for auto-creation
    acks: str = "all"


class Backend(Protocol):
    def create_topic(self, name: str, partitions: int, configs: dict[str, str]) -> int: ...
    def delete_topic(self, name: str) -> None: ...
    def list_topics(self) -> list[str]: ...
    def describe_topic(self, name: str) -> TopicInfo: ...
    def produce(self, topic: str, records: Iterable[RawRecord], options: ProduceOptions
                ) -> int: ...
    def consume(self, topic: str, options: ConsumeOptions) -> Iterator[Message]: ...
    def close(self) -> None: ...


# --- in-process ---------------------------------------------------------------------------------


class EmbeddedBackend:
    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.log = LogManager(data_dir)

    def create_topic(self, name: str, partitions: int, configs: dict[str, str]) -> int:
        return self.log.create_topic(name, partitions, configs).partitions

    def delete_topic(self, name: str) -> None:
        self.log.delete_topic(name)

    def list_topics(self) -> list[str]:
        return self.log.topics()

    def describe_topic(self, name: str) -> TopicInfo:
        config = self.log.topic_config(name)
        defaults = config.defaults()
        parts = []
        for p in range(config.partitions):
            partition = self.log.partition(name, p)
            parts.append(PartitionInfo(p, partition.log_start_offset, partition.high_watermark,
                                       partition.size))
        configs = {k: v for k, v in config.as_kafka_configs().items() if k not in defaults}
        return TopicInfo(name, parts, configs)

    def produce(self, topic: str, records: Iterable[RawRecord], options: ProduceOptions) -> int:
        with Producer(self.data_dir, compression=options.compression,
                      partitioner=options.partitioner,
                      default_partitions=options.partitions) as producer:
            total, pending = 0, []
            for key, value in records:  # in chunks: a large stdin streams
                pending.append((key, value, (), None))
                if len(pending) >= 10_000:
                    total += len(producer.send_many(topic, pending, partition=options.partition))
                    pending = []
            if pending:
                total += len(producer.send_many(topic, pending, partition=options.partition))
            return total

    def consume(self, topic: str, options: ConsumeOptions) -> Iterator[Message]:
        self.log.topic_config(topic)  # an unknown topic fails here, in one line
        reset = "earliest" if options.from_beginning else "latest"
        with Consumer(self.data_dir, topic, group_id=options.group, auto_offset_reset=reset,
                      enable_auto_commit=False) as consumer:
            if options.from_beginning and options.group is None:
                consumer.seek_to_beginning()
            handed_out: dict[tuple[str, int], int] = {}
            try:
                while True:
                    batch = consumer.poll(timeout=0.2)
                    for message in batch:
                        handed_out[(message.topic, message.partition)] = message.offset + 1
                        yield message
                    if not batch and options.exit_at_end and _at_end(consumer):
                        return
            finally:
                if options.group and handed_out:
                    consumer.commit_offsets(handed_out)

    def close(self) -> None:
        self.log.close()


def _at_end(consumer: Consumer) -> bool:
    assigned = consumer.assignment()
    return bool(assigned) and all(
        consumer.position(t, p) >= consumer.log.partition(t, p).high_watermark
        for t, p in assigned
    )


# --- over the wire ------------------------------------------------------------------------------

PARTITIONERS = {"murmur2": "murmur2_random", "crc32": "consistent_random"}
TIMEOUT = 15.0


def _raise_kafka(exc: Any) -> None:
    """confluent-kafka's KafkaException -> our one-line KafkaError."""
    err = exc.args[0] if exc.args else None
    if hasattr(err, "code") and hasattr(err, "str"):
        try:
            code = ErrorCode(err.code())
        except ValueError:
            code = ErrorCode.UNKNOWN_SERVER_ERROR
        raise KafkaError(err.str(), code) from None
    raise KafkaError(str(exc)) from None


class KafkaBackend:
    """Any Kafka-compatible broker at `bootstrap` (HOST:PORT[,HOST:PORT...])."""

    def __init__(self, bootstrap: str) -> None:
        from confluent_kafka.admin import AdminClient

        self.bootstrap = bootstrap
        # librdkafka's own log lines would break the one-line error rule: errors reach us anyway
        self._base = {"bootstrap.servers": bootstrap, "client.id": "minikafka-cli",
                      "log_level": 0}
        self.admin = AdminClient(self._base)
        try:
            self.admin.list_topics(timeout=TIMEOUT)
        except Exception as exc:
            raise KafkaError(f"cannot reach a Kafka broker at {bootstrap}: {exc}") from None

    def _wait(self, futures: dict[Any, Any]) -> None:
        from confluent_kafka import KafkaException

        for future in futures.values():
            try:
                future.result(timeout=TIMEOUT)
            except KafkaException as exc:
                _raise_kafka(exc)

    def create_topic(self, name: str, partitions: int, configs: dict[str, str]) -> int:
        from confluent_kafka.admin import NewTopic

        self._wait(self.admin.create_topics([NewTopic(name, partitions, 1, config=configs)]))
        return partitions

    def delete_topic(self, name: str) -> None:
        self._wait(self.admin.delete_topics([name]))

    def list_topics(self) -> list[str]:
        topics = self.admin.list_topics(timeout=TIMEOUT).topics
        return sorted(t for t in topics if not t.startswith("__"))

    def describe_topic(self, name: str) -> TopicInfo:
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import ConfigResource

        meta = self._topic_metadata(name)
        consumer = self._consumer({"group.id": "minikafka-cli-describe"})
        try:
            parts = []
            for p in sorted(meta.partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(name, p),
                                                           timeout=TIMEOUT)
                parts.append(PartitionInfo(p, low, high))
        finally:
            consumer.close()
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        configs: dict[str, str] = {}
        for entries in self.admin.describe_configs([resource]).values():
            configs = {k: e.value for k, e in entries.result(timeout=TIMEOUT).items()
                       if not e.is_default and e.value is not None}
        return TopicInfo(name, parts, configs)

    def _topic_metadata(self, name: str) -> Any:
        """Metadata for all topics, not for `name`: asking for one by name may auto-create it."""
        meta = self.admin.list_topics(timeout=TIMEOUT).topics.get(name)
        if meta is None or meta.error is not None:
            raise KafkaError(f"unknown topic {name!r}", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        return meta

    def _consumer(self, extra: dict[str, Any]) -> Any:
        from confluent_kafka import Consumer as KafkaConsumer

        return KafkaConsumer({**self._base, "enable.auto.commit": False, **extra})

    def produce(self, topic: str, records: Iterable[RawRecord], options: ProduceOptions) -> int:
        from confluent_kafka import Producer as KafkaProducer

        producer = KafkaProducer({
            **self._base,
            "acks": options.acks,
            "compression.type": options.compression or "none",
            "partitioner": PARTITIONERS[options.partitioner],
            "linger.ms": 5,
        })
        errors: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(err.str())

        sent = 0
        for key, value in records:
            while True:
                try:
                    if options.partition is None:
                        producer.produce(topic, value, key, on_delivery=delivered)
                    else:
                        producer.produce(topic, value, key, partition=options.partition,
                                         on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.1)  # the local queue is full: let deliveries drain
            sent += 1
            producer.poll(0)
        producer.flush(TIMEOUT * 4)
        if errors:
            raise KafkaError(f"{len(errors)} record(s) not delivered: {errors[0]}")
        return sent

    def consume(self, topic: str, options: ConsumeOptions) -> Iterator[Message]:
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

        meta = self._topic_metadata(topic)
        start = OFFSET_BEGINNING if options.from_beginning else OFFSET_END
        consumer = self._consumer({
            "group.id": options.group or "minikafka-cli",
            "auto.offset.reset": "earliest" if options.from_beginning else "latest",
            "enable.partition.eof": True,
            "enable.auto.offset.store": False,  # commit only what was handed out
        })
        assigned: set[int] = set()
        at_eof: set[int] = set()

        def on_assign(c: Any, partitions: list[Any]) -> None:
            assigned.update(tp.partition for tp in partitions)

        if options.group:
            consumer.subscribe([topic], on_assign=on_assign)
        else:
            parts = [TopicPartition(topic, p, start) for p in meta.partitions]
            consumer.assign(parts)
            assigned.update(meta.partitions)
        try:
            while True:
                for msg in consumer.consume(500, timeout=0.2):
                    if msg.error() is not None:
                        if msg.error().code() == -191:  # _PARTITION_EOF
                            at_eof.add(msg.partition())
                            continue
                        raise KafkaError(msg.error().str())
                    at_eof.discard(msg.partition())
                    consumer.store_offsets(msg)
                    yield Message(msg.topic(), msg.partition(), msg.offset(), msg.key(),
                                  msg.value(), list(msg.headers() or ()),
                                  msg.timestamp()[1])
                if options.exit_at_end and assigned and assigned <= at_eof:
                    return
        finally:
            if options.group:
                _commit_stored(consumer)
            consumer.close()

    def close(self) -> None:
        """The admin client needs no closing."""


def _commit_stored(consumer: Any) -> None:
    from confluent_kafka import KafkaException

    try:
        consumer.commit(asynchronous=False)
    except KafkaException as exc:
        if exc.args[0].code() != -168:  # _NO_OFFSET: nothing was consumed
            _raise_kafka(exc)


def open_backend(bootstrap: str | None, data_dir: str) -> Backend:
    if bootstrap:
        return KafkaBackend(bootstrap)
    return EmbeddedBackend(data_dir)
