"""Where the CLI's commands act: a data directory in-process, or any Kafka-compatible broker over
the wire (through confluent-kafka and kafka-python, so ours and Apache Kafka alike).

Each backend imports its clients when it opens, so the CLI starts without loading any of them."""

from __future__ import annotations

import argparse
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..clock import wall_ms
from ..errors import ErrorCode, KafkaError

if TYPE_CHECKING:
    from ..client import Consumer, Message
    from ..records import Headers

RawRecord = tuple[int, bytes | None, bytes | None]  # input line number, key, value
TimeQuery = tuple[str, int, int]  # topic, partition, timestamp (-1 latest, -2 earliest)
Settings = dict[str, str]
DEFAULT_DATA_DIR = os.environ.get("MINIKAFKA_DATA_DIR", "data")
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
TIMEOUT = 15.0
CONNECT_TIMEOUT = 5.0  # a broker that does not answer the first metadata request in time
_CONNECT_POLL = 0.25  # how often the first request looks at connection errors


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


@dataclass(frozen=True, slots=True)
class StartAt:
    """Where reading starts when no committed offset decides: kcat's -o, or a time."""

    kind: str  # beginning | end | offset | tail | time
    value: int = 0

    @classmethod
    def parse(cls, text: str) -> StartAt:
        if text in ("beginning", "end"):
            return cls(text)
        try:
            n = int(text)
        except ValueError:
            raise ValueError(f"--offset takes beginning, end, N or -N, not {text!r}") from None
        return cls("tail", -n) if n < 0 else cls("offset", n)


@dataclass(slots=True)
class ConsumeOptions:
    group: str | None = None
    start: StartAt | None = None  # None: the committed offset, else the end
    partition: int | None = None
    exit_at_end: bool = False


@dataclass(slots=True)
class ProduceOptions:
    partition: int | None = None
    compression: str | None = None
    partitioner: str = "murmur2"
    partitions: int = 1  # for auto-creation
    acks: str = "all"
    headers: Headers = ()


class Backend(Protocol):
    def create_topic(self, name: str, partitions: int, configs: dict[str, str]) -> int: ...
    def delete_topic(self, name: str) -> None: ...
    def list_topics(self) -> list[str]: ...
    def describe_topic(self, name: str) -> TopicInfo: ...
    def alter_topic(self, name: str, configs: dict[str, str], delete: list[str]) -> None: ...
    def add_partitions(self, name: str, total: int) -> None: ...
    def produce(self, topic: str, records: Iterable[RawRecord], options: ProduceOptions
                ) -> int: ...
    def consume(self, topics: Sequence[str], options: ConsumeOptions) -> Iterator[Message]: ...
    def query_offsets(self, queries: Sequence[TimeQuery]) -> list[int]: ...
    def delete_records(self, topic: str, partitions: Sequence[int] | None, before: int
                       ) -> list[tuple[int, int]]: ...
    def describe_cluster(self) -> dict[str, str]: ...
    def api_versions(self) -> dict[str, tuple[int, int]]: ...
    def close(self) -> None: ...


# --- in-process ---------------------------------------------------------------------------------


class EmbeddedBackend:
    def __init__(self, data_dir: str) -> None:
        from ..log import LogManager

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

    def alter_topic(self, name: str, configs: dict[str, str], delete: list[str]) -> None:
        self.log.alter_topic_config(name, configs, delete)

    def add_partitions(self, name: str, total: int) -> None:
        self.log.add_partitions(name, total)

    def compact(self, name: str) -> tuple[int, int, int]:
        """Clean every partition of a compacted topic now, whatever its dirty ratio: (records
        removed, bytes before, bytes after)."""
        from ..log.cleaner import CleanerConfig, clean_partition

        config = self.log.topic_config(name)
        if not config.compacts:
            raise ValueError(f"topic {name!r} is not compacted (cleanup.policy="
                             f"{config.cleanup_policy})")
        partitions = [self.log.partition(name, p) for p in range(config.partitions)]
        before = sum(p.size for p in partitions)
        results = [clean_partition(p, CleanerConfig(), wall_ms(), force=True)
                   for p in partitions]
        removed = sum(r.records_removed for r in results if r is not None)
        return removed, before, sum(p.size for p in partitions)

    def produce(self, topic: str, records: Iterable[RawRecord], options: ProduceOptions) -> int:
        from ..client import Producer

        headers = options.headers
        with Producer(self.data_dir, compression=options.compression,
                      partitioner=options.partitioner,
                      default_partitions=options.partitions) as producer:

            def send(chunk: list[Any], lines: list[int]) -> int:
                try:
                    return len(producer.send_many(topic, chunk, partition=options.partition))
                except KafkaError as exc:  # a batch refused: the lines it held
                    raise KafkaError(f"input lines {lines[0]}-{lines[-1]}: {exc}",
                                     exc.code) from None

            total, pending, lines = 0, [], []
            for line, key, value in records:  # in chunks: a large input streams
                pending.append((key, value, headers, None))
                lines.append(line)
                if len(pending) >= 10_000:
                    total += send(pending, lines)
                    pending, lines = [], []
            if pending:
                total += send(pending, lines)
            return total

    def consume(self, topics: Sequence[str], options: ConsumeOptions) -> Iterator[Message]:
        from ..client import Consumer

        names = resolve_topics(topics, self.log.topics())
        wanted = [(t, p) for t in names  # an unknown topic: a one-line error here
                  for p in wanted_partitions(t, self.log.topic_config(t).partitions,
                                             options.partition)]
        start = options.start or StartAt("end")
        with Consumer(self.data_dir, group_id=options.group,
                      auto_offset_reset="earliest" if start.kind == "beginning" else "latest",
                      enable_auto_commit=False) as consumer:
            if options.group and options.partition is None:
                consumer.subscribe(names)  # committed offsets decide where to start
            else:
                consumer.assign(wanted)
                _seek_embedded(consumer, start)
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

    def query_offsets(self, queries: Sequence[TimeQuery]) -> list[int]:
        found = []
        for topic, index, timestamp in queries:
            partition = self.log.partition(topic, index)
            if timestamp in (_OFFSET_END, _OFFSET_BEGINNING):
                found.append(partition.high_watermark if timestamp == _OFFSET_END
                             else partition.log_start_offset)
                continue
            hit = partition.offset_for_timestamp(timestamp)
            found.append(-1 if hit is None else hit[0])
        return found

    def delete_records(self, topic: str, partitions: Sequence[int] | None, before: int
                       ) -> list[tuple[int, int]]:
        done = []
        for index in wanted_indexes(topic, self.log.topic_config(topic).partitions, partitions):
            partition = self.log.partition(topic, index)
            end = partition.high_watermark
            done.append((index, partition.delete_records(end if before == _OFFSET_END
                                                         else before)))
        return done

    def describe_cluster(self) -> dict[str, str]:
        topics = self.log.topics()
        partitions = sum(self.log.topic_config(t).partitions for t in topics)
        size = sum(self.log.partition(t, p).size for t in topics
                   for p in range(self.log.topic_config(t).partitions))
        return {"mode": "embedded", "data directory": str(self.log.data_dir.resolve()),
                "topics": str(len(topics)), "partitions": str(partitions),
                "bytes on disk": str(size),
                "groups with offsets": str(len(self.log.offsets.groups()))}

    def api_versions(self) -> dict[str, tuple[int, int]]:
        raise KafkaError("api-versions needs a broker: pass --bootstrap-server")

    def close(self) -> None:
        self.log.close()


def resolve_topics(names: Sequence[str], existing: Iterable[str]) -> list[str]:
    """The topics to read: each name as given, or for a name starting with ^ (librdkafka's
    convention for a regex) every existing topic it matches."""
    known = sorted(existing)
    chosen: list[str] = []
    for name in names:
        found = [name]
        if name.startswith("^"):
            try:
                pattern = re.compile(name)
            except re.error as exc:
                raise ValueError(f"invalid topic regex {name!r}: {exc}") from None
            found = [t for t in known if pattern.search(t)]
            if not found:
                raise KafkaError(f"no topic matches {name!r}",
                                 ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        chosen += [t for t in found if t not in chosen]
    return chosen


def wanted_indexes(topic: str, count: int, chosen: Sequence[int] | None) -> list[int]:
    """`chosen` partitions of a topic with `count` (all of them for None), each checked."""
    if chosen is None:
        return list(range(count))
    for index in chosen:
        if not 0 <= index < count:
            raise KafkaError(f"topic {topic!r} has no partition {index} (it has {count})",
                             ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    return list(chosen)


def wanted_partitions(topic: str, count: int, partition: int | None) -> list[int]:
    """`wanted_indexes` for one partition or all."""
    return wanted_indexes(topic, count, None if partition is None else [partition])


def _seek_embedded(consumer: Consumer, start: StartAt) -> None:
    if start.kind == "time":
        consumer.seek_to_timestamp(start.value)
        return
    for topic, index in consumer.assignment():
        partition = consumer.log.partition(topic, index)
        first, end = partition.log_start_offset, partition.high_watermark
        position = {"beginning": first, "end": end, "offset": start.value,
                    "tail": max(first, end - start.value)}[start.kind]
        consumer.seek(topic, index, position)


def _at_end(consumer: Consumer) -> bool:
    assigned = consumer.assignment()
    return bool(assigned) and all(
        consumer.position(t, p) >= consumer.log.partition(t, p).high_watermark
        for t, p in assigned
    )


# --- over the wire ------------------------------------------------------------------------------

PARTITIONERS = {"murmur2": "murmur2_random", "crc32": "consistent_random"}
_PARTITION_EOF, _NO_OFFSET = -191, -168
_OFFSET_BEGINNING, _OFFSET_END, _OFFSET_TAIL_BASE = -2, -1, -2000  # librdkafka's logical offsets


_GROUP_STATES = {"PREPARING_REBALANCING": "PreparingRebalance",
                 "COMPLETING_REBALANCING": "CompletingRebalance"}


def group_state_name(state: Any) -> str:
    """confluent-kafka's group state as Kafka (and this broker) names it (for the CLI and the
    console alike)."""
    name = getattr(state, "name", str(state))
    return _GROUP_STATES.get(name, name.capitalize())


def raise_kafka(exc: Any) -> None:
    """confluent-kafka's KafkaException -> our one-line KafkaError."""
    err = exc.args[0] if exc.args else None
    if err is not None and hasattr(err, "code") and hasattr(err, "str"):
        try:
            code = ErrorCode(err.code())
        except ValueError:
            code = ErrorCode.UNKNOWN_SERVER_ERROR
        raise KafkaError(err.str(), code) from None
    raise KafkaError(str(exc)) from None


def admin_result(future: Any) -> Any:
    """An admin call's result, waited for; its error as our one-line KafkaError."""
    from confluent_kafka import KafkaException

    try:
        return future.result(timeout=TIMEOUT)
    except KafkaException as exc:
        raise_kafka(exc)


def print_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """Rows in aligned columns under `header`, as Kafka's tools print them ("-" for None)."""
    cells = [list(header)] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


class KafkaBackend:
    """Any Kafka-compatible broker at `bootstrap` (HOST:PORT[,HOST:PORT...]); `settings` are
    librdkafka properties (kcat's -X) for every client, over the CLI's own choices."""

    def __init__(self, bootstrap: str, settings: Settings | None = None) -> None:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        self.bootstrap = bootstrap
        self._settings = settings or {}
        # librdkafka's own log lines would break the one-line error rule: errors reach us anyway
        self._base: dict[str, str | int | float | bool] = {
            "bootstrap.servers": bootstrap, "client.id": "minikafka-cli", "log_level": 0,
            **self._settings}
        self._refused: str | None = None  # why the last connection attempt failed
        self._all_down = False
        config: dict[str, Any] = {**self._base, "error_cb": self._on_error}
        try:
            self.admin = AdminClient(config)
        except KafkaException as exc:  # an unknown or invalid -X property
            raise_kafka(exc)
        self._connect()

    def _on_error(self, err: Any) -> None:
        from confluent_kafka import KafkaError as ClientError

        if err.code() == ClientError._TRANSPORT:
            self._refused = err.str().rsplit(": ", 1)[-1].split(" (after ")[0]
        elif err.code() == ClientError._ALL_BROKERS_DOWN:
            self._all_down = self._refused is not None

    def _connect(self) -> None:
        """The first metadata request, retried until CONNECT_TIMEOUT; when every bootstrap
        server refused the connection it ends at once, with the reason, as kcat does."""
        deadline = time.monotonic() + CONNECT_TIMEOUT
        reason = "no answer"
        while time.monotonic() < deadline and not self._all_down:
            try:
                self.admin.list_topics(timeout=_CONNECT_POLL)
                return
            except Exception as exc:  # not yet: the errors it met arrive with poll()
                reason = str(exc)
            self.admin.poll(0)
        raise KafkaError(f"cannot reach a Kafka broker at {self.bootstrap}: "
                         f"{self._refused if self._all_down else reason}")

    def _wait(self, futures: Iterable[Any]) -> list[Any]:
        return [admin_result(future) for future in futures]

    def create_topic(self, name: str, partitions: int, configs: dict[str, str]) -> int:
        from confluent_kafka.admin import NewTopic

        new = NewTopic(name, partitions, 1, config=configs)
        self._wait(self.admin.create_topics([new]).values())
        return partitions

    def delete_topic(self, name: str) -> None:
        self._wait(self.admin.delete_topics([name]).values())

    def list_topics(self) -> list[str]:
        topics = self.admin.list_topics(timeout=TIMEOUT).topics
        return sorted(t for t in topics if not t.startswith("__"))

    def _partition_counts(self, names: Sequence[str]) -> dict[str, int]:
        """Each topic's partition count, ^regexes resolved, from one metadata request for all
        topics (naming a topic in it may auto-create it)."""
        topics = self.admin.list_topics(timeout=TIMEOUT).topics
        counts = {}
        for name in resolve_topics(names, (t for t in topics if not t.startswith("__"))):
            meta = topics.get(name)
            if meta is None or meta.error is not None:
                raise KafkaError(f"unknown topic {name!r}", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            counts[name] = len(meta.partitions)
        return counts

    def _topic_metadata(self, name: str) -> Any:
        """Metadata for all topics, not for `name`: asking for one by name may auto-create it."""
        meta = self.admin.list_topics(timeout=TIMEOUT).topics.get(name)
        if meta is None or meta.error is not None:
            raise KafkaError(f"unknown topic {name!r}", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        return meta

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
        entries = self._wait(self.admin.describe_configs([resource]).values())[0]
        configs = {k: e.value for k, e in entries.items()
                   if not e.is_default and e.value is not None}
        return TopicInfo(name, parts, configs)

    def alter_topic(self, name: str, configs: dict[str, str], delete: list[str]) -> None:
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

        self._topic_metadata(name)
        entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                   for k, v in configs.items()]
        entries += [ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE)
                    for k in delete]
        resource = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=entries)
        self._wait(self.admin.incremental_alter_configs([resource]).values())

    def add_partitions(self, name: str, total: int) -> None:
        from confluent_kafka.admin import NewPartitions

        self._wait(self.admin.create_partitions([NewPartitions(name, total)]).values())

    def _consumer(self, extra: dict[str, Any]) -> Any:
        from confluent_kafka import Consumer as KafkaConsumer

        return KafkaConsumer({**self._base, "enable.auto.commit": False, **extra,
                              **self._settings})

    def produce(self, topic: str, records: Iterable[RawRecord], options: ProduceOptions) -> int:
        from confluent_kafka import KafkaException
        from confluent_kafka import Producer as KafkaProducer

        producer = KafkaProducer({
            **self._base,
            "acks": options.acks,
            "compression.type": options.compression or "none",
            "partitioner": PARTITIONERS[options.partitioner],
            "linger.ms": 5,
            **self._settings,
        })
        errors: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(err.str())

        extra: dict[str, Any] = {"on_delivery": delivered}
        if options.partition is not None:
            extra["partition"] = options.partition
        if options.headers:
            extra["headers"] = list(options.headers)
        sent = 0
        for line, key, value in records:
            while True:
                try:
                    producer.produce(topic, value, key, **extra)
                    break
                except BufferError:
                    producer.poll(0.1)  # the local queue is full: let deliveries drain
                except KafkaException as exc:  # refused before sending: too large, ...
                    producer.flush(TIMEOUT)
                    raise KafkaError(f"input line {line} ({len(value or b'')} bytes, "
                                     f"{_preview(value)}): {exc.args[0].str()}") from None
            sent += 1
            producer.poll(0)
        producer.flush(TIMEOUT * 4)
        if errors:
            raise KafkaError(f"{len(errors)} record(s) not delivered: {errors[0]}")
        return sent

    def consume(self, topics: Sequence[str], options: ConsumeOptions) -> Iterator[Message]:
        from confluent_kafka import TopicPartition

        from ..client import Message

        wanted = [(t, p) for t, count in self._partition_counts(topics).items()
                  for p in wanted_partitions(t, count, options.partition)]
        start = options.start or StartAt("end")
        consumer = self._consumer({
            "group.id": options.group or "minikafka-cli",
            "auto.offset.reset": "earliest" if start.kind == "beginning" else "latest",
            "enable.partition.eof": True,
            "enable.auto.offset.store": False,  # commit only what was handed out
        })
        assigned: set[tuple[str, int]] = set()
        at_eof: set[tuple[str, int]] = set()

        def on_assign(_c: Any, partitions: list[Any]) -> None:
            assigned.update((tp.topic, tp.partition) for tp in partitions)

        if options.group and options.partition is None:
            consumer.subscribe(list(topics), on_assign=on_assign)  # regexes as librdkafka's
        else:
            offsets = self._start_offsets(consumer, wanted, start)
            consumer.assign([TopicPartition(t, p, o) for (t, p), o in zip(wanted, offsets,
                                                                           strict=True)])
            assigned.update(wanted)
        try:
            while True:
                for msg in consumer.consume(500, timeout=0.2):
                    if msg.error() is not None:
                        if msg.error().code() == _PARTITION_EOF:
                            at_eof.add((msg.topic(), msg.partition()))
                            continue
                        raise KafkaError(msg.error().str())
                    at_eof.discard((msg.topic(), msg.partition()))
                    consumer.store_offsets(msg)
                    yield Message(msg.topic(), msg.partition(), msg.offset(), msg.key(),
                                  msg.value(), list(msg.headers() or ()), msg.timestamp()[1])
                if options.exit_at_end and assigned and assigned <= at_eof:
                    return
        finally:
            if options.group:
                _commit_stored(consumer)
            consumer.close()

    @staticmethod
    def _start_offsets(consumer: Any, partitions: list[tuple[str, int]], start: StartAt
                       ) -> list[int]:
        from confluent_kafka import TopicPartition

        if start.kind == "time":
            found = consumer.offsets_for_times(
                [TopicPartition(t, p, start.value) for t, p in partitions], timeout=TIMEOUT)
            return [_OFFSET_END if tp.offset < 0 else tp.offset for tp in found]
        fixed = {"beginning": _OFFSET_BEGINNING, "end": _OFFSET_END, "offset": start.value,
                 "tail": _OFFSET_TAIL_BASE - start.value}[start.kind]
        return [fixed] * len(partitions)

    def query_offsets(self, queries: Sequence[TimeQuery]) -> list[int]:
        from confluent_kafka import KafkaException, TopicPartition

        counts = self._partition_counts(sorted({topic for topic, _, _ in queries}))
        for topic, index, _ in queries:
            wanted_partitions(topic, counts[topic], index)
        consumer = self._consumer({"group.id": "minikafka-cli-query"})
        try:
            found = consumer.offsets_for_times([TopicPartition(*query) for query in queries],
                                               timeout=TIMEOUT)
        except KafkaException as exc:
            raise_kafka(exc)
        finally:
            consumer.close()
        for tp in found:
            if tp.error is not None:
                raise KafkaError(f"{tp.topic} [{tp.partition}]: {tp.error.str()}")
        return [tp.offset for tp in found]

    def delete_records(self, topic: str, partitions: Sequence[int] | None, before: int
                       ) -> list[tuple[int, int]]:
        from confluent_kafka import TopicPartition

        indexes = wanted_indexes(topic, self._partition_counts([topic])[topic], partitions)
        futures = self.admin.delete_records([TopicPartition(topic, p, before) for p in indexes],
                                            request_timeout=TIMEOUT)
        done = self._wait(futures.values())
        return [(tp.partition, result.low_watermark)
                for tp, result in zip(futures, done, strict=True)]

    def describe_cluster(self) -> dict[str, str]:
        cluster = self._wait([self.admin.describe_cluster()])[0]
        nodes = ", ".join(f"{n.id}@{n.host}:{n.port}" for n in cluster.nodes)
        controller = cluster.controller
        return {"mode": "broker", "bootstrap": self.bootstrap,
                "cluster id": str(cluster.cluster_id),
                "controller": "none" if controller is None else str(controller.id),
                "brokers": nodes, "topics": str(len(self.list_topics()))}

    def api_versions(self) -> dict[str, tuple[int, int]]:
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="minikafka-cli")
        try:
            return {key.name: (low, high)
                    for key, (low, high) in sorted(admin.api_versions().items())}
        finally:
            admin.close()

    def close(self) -> None:
        """The admin client needs no closing."""


def _commit_stored(consumer: Any) -> None:
    from confluent_kafka import KafkaException

    try:
        consumer.commit(asynchronous=False)
    except KafkaException as exc:
        if exc.args[0].code() != _NO_OFFSET:  # nothing was consumed: nothing to commit
            raise_kafka(exc)


def send_request(bootstrap: str, request: Any) -> Any:
    """One request to the first bootstrap server that takes the connection, and its answer:
    for the admin calls neither confluent-kafka's nor kafka-python's admin client has (client
    quotas, transactions), on a connection of our own, encoded and decoded by kafka-python's
    message classes. Any broker of a cluster answers them (Kafka forwards quota changes to its
    controller); transactions ask the transaction coordinator, which on one node is the
    broker."""
    failure: Exception | None = None
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=TIMEOUT) as sock:
                request.with_header(correlation_id=1, client_id="minikafka-cli")
                sock.sendall(request.encode(header=True, framed=True))
                size = int.from_bytes(_receive(sock, 4), "big", signed=True)
                return request.header.get_response_class().decode(_receive(sock, size),
                                                                   header=True)
        except (OSError, ValueError) as exc:
            failure = exc
    raise KafkaError(f"cannot reach a Kafka broker at {bootstrap}: {failure}")


def _receive(sock: socket.socket, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return bytes(data)


def _preview(data: bytes | None) -> str:
    """The start of an input message, as text."""
    if data is None:
        return "null"
    text = data[:40].decode(errors="backslashreplace")
    return repr(text + "..." if len(data) > 40 else text)


def connection_arguments() -> argparse.ArgumentParser:
    """--data-dir, -b and -X: where a data command acts (a parent parser)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=None,
                        help="work on this data directory in-process (env MINIKAFKA_DATA_DIR; "
                        f"default: {DEFAULT_DATA_DIR})")
    common.add_argument("-b", "--bootstrap-server", default=os.environ.get(BOOTSTRAP_ENV),
                        metavar="HOST:PORT", help="work against this Kafka-compatible broker "
                        f"instead (env {BOOTSTRAP_ENV})")
    common.add_argument("-X", dest="client_config", action="append", default=[],
                        metavar="NAME=VALUE", help="a Kafka client property for -b, as kcat's "
                        "-X (librdkafka's names; repeatable)")
    return common


def parse_pairs(pairs: Sequence[str], flag: str) -> dict[str, str]:
    """NAME=VALUE arguments of `flag`."""
    found = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"{flag} expects NAME=VALUE, got {pair!r}")
        found[name] = value
    return found


def backend_for(args: argparse.Namespace, *, writes: bool = False) -> Backend:
    """The broker of -b, else the data directory; only commands that write create one, since
    a command that reads from a mistyped or missing path should say so."""
    if args.bootstrap_server and args.data_dir:
        raise ValueError("give either --data-dir (in-process) or --bootstrap-server, not both")
    settings = parse_pairs(args.client_config, "-X")
    if args.bootstrap_server:
        return KafkaBackend(args.bootstrap_server, settings)
    data_dir = args.data_dir or DEFAULT_DATA_DIR
    if settings:
        raise ValueError("-X sets Kafka client properties (librdkafka's, as kcat's -X): "
                         "it needs -b HOST:PORT, not a data directory")
    if not writes and not os.path.exists(data_dir):
        raise ValueError(f"no data directory at {data_dir}: give --data-dir DIR, or "
                         "-b HOST:PORT to work against a broker")
    return EmbeddedBackend(data_dir)
