"""The data directory: topics and their configs, partitions, committed offsets, and who owns it.

Layout (Kafka's where Kafka has one):
    <data-dir>/<topic>-<partition>/<20-digit base offset>.log|.index|.timeindex
    <data-dir>/__meta/topics/<topic>.json     partitions and configs
    <data-dir>/__meta/offsets.log             committed consumer offsets
    <data-dir>/__meta/lock, broker.json       shared by embedded clients, exclusive for a broker
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import (
    DataDirLockedError,
    InvalidPartitionsError,
    InvalidTopicError,
    KafkaStorageError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from .config import (
    FlushPolicy,
    TopicConfig,
    check_collision,
    new_topic_id,
    valid_topic_name,
    validate_topic_name,
)
from .durable import MetadataFileError, read_metadata, storage_error, write_atomically
from .offsets import OffsetStore
from .opened import OpenPartitions
from .partition import Partition
from .producer_state import PRODUCER_ID_EXPIRATION_MS
from .shared import SharedPartition

log = logging.getLogger(__name__)

META = "__meta"
RESERVED_TOPICS = {"__consumer_offsets", "__transaction_state", META}
DELETED_SUFFIX = "-delete"  # a deleted partition's directory, renamed and not yet removed
_DELETED = re.compile(r".+-\d+\.[0-9a-f]{32}" + DELETED_SUFFIX)


def remove_deleted(paths: Iterable[Path]) -> None:
    """Remove set-aside directories (slow for many: a worker thread's job). What cannot be
    removed now is removed when a broker next opens the directory."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


class DataDirLock:
    """Embedded clients share the directory; a broker owns it alone and says where it listens."""

    def __init__(self, meta_dir: Path, exclusive: bool) -> None:
        self.meta_dir = meta_dir
        self.exclusive = exclusive
        self._fd = os.open(meta_dir / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            data_dir = meta_dir.parent
            if exclusive:
                raise DataDirLockedError(
                    f"data directory {data_dir} is in use by another broker or by embedded "
                    "clients; stop them first"
                ) from None
            address = self.owner_address()
            where = f"the minikafka broker at {address}" if address else "a minikafka broker"
            raise DataDirLockedError(
                f"data directory {data_dir} is served by {where}: use it through the broker, "
                f"with a Kafka client's bootstrap.servers={address or 'HOST:PORT'} (the CLI: "
                f"-b {address or 'HOST:PORT'}), instead of opening the directory"
            ) from None

    def owner_address(self) -> str | None:
        try:
            info = json.loads((self.meta_dir / "broker.json").read_text())
            return f"{info['host']}:{info['port']}"
        except (OSError, ValueError, KeyError):
            return None

    def write_owner_info(self, info: dict[str, Any]) -> None:
        write_atomically(self.meta_dir / "broker.json", json.dumps(info))

    def release(self) -> None:
        if self.exclusive:
            (self.meta_dir / "broker.json").unlink(missing_ok=True)
        os.close(self._fd)


class LogManager:
    """Opens a data directory and hands out its partitions.

    `exclusive=True` is the broker's mode: it alone writes, so its partitions are single-writer
    `Partition`s, and its topics and their configs are read from disk once, at start, and kept
    in memory as they change (a Metadata request for every topic reads no file). Otherwise
    several processes may use the directory at once, through `SharedPartition`s, and topic
    configs are read afresh each time.
    """

    def __init__(self, data_dir: str | os.PathLike[str], *, exclusive: bool = False,
                 flush_policy: str | FlushPolicy = "never",
                 clock: Callable[[], float] = time.time,
                 producer_id_expiration_ms: int = PRODUCER_ID_EXPIRATION_MS,
                 topic_defaults: Mapping[str, Any] | None = None) -> None:
        self.data_dir = Path(data_dir)
        # The broker's values for topic configs (TopicConfig.broker_defaults), by Kafka name
        self.topic_defaults: Mapping[str, Any] = topic_defaults or {}
        self.meta_dir = self.data_dir / META
        try:
            (self.meta_dir / "topics").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataDirLockedError(f"cannot use data directory {self.data_dir}: "
                                     f"{exc.strerror}") from None
        if not os.access(self.meta_dir, os.W_OK):
            raise DataDirLockedError(f"data directory {self.data_dir} is not writable")
        self.lock = DataDirLock(self.meta_dir, exclusive)
        self.exclusive = exclusive
        self.flush_policy = FlushPolicy.parse(flush_policy)
        self.clock = clock
        self.producer_id_expiration_ms = producer_id_expiration_ms
        # A broker (exclusive) group-commits offset fsyncs itself; embedded commits sync inline.
        self.offsets = OffsetStore(self.meta_dir / "offsets.log",
                                   fsync=self.flush_policy.mode == "always" and not exclusive)
        self._configs: dict[str, TopicConfig] = {}
        # Exclusive: every topic sorted, and the topics by id, kept with the caches they were
        # made from. A cache that changes is replaced (copy on write), so one made from an older
        # cache, even by the loop while a worker thread changed it, is seen and made again.
        self._names: tuple[dict[str, TopicConfig], frozenset[str], list[str]] | None = None
        self._ids: tuple[dict[str, TopicConfig], dict[uuid.UUID, str]] | None = None
        self._damaged: frozenset[str] = frozenset()  # exclusive: topics whose config is damaged
        self._partitions: dict[tuple[str, int], Partition] = {}
        # partition(topic, index): the partition, opened if it is not yet (compiled: opened.py)
        self.partition: Callable[[str, int], Partition] = OpenPartitions(self._partitions,
                                                                         self._open_partition)
        self._mutex = threading.RLock()
        self._closed = threading.Event()
        self._flusher: threading.Thread | None = None
        if exclusive:
            self._load_configs()
            remove_deleted(p for p in self.data_dir.iterdir() if _DELETED.fullmatch(p.name))
        if self.flush_policy.mode == "interval":
            self._flusher = threading.Thread(target=self._flush_every_interval,
                                             name="minikafka-flusher", daemon=True)
            self._flusher.start()

    def __enter__(self) -> LogManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- topics -------------------------------------------------------------------------------

    def _config_path(self, topic: str) -> Path:
        return self.meta_dir / "topics" / f"{topic}.json"

    @contextmanager
    def _topics_locked(self) -> Iterator[None]:
        with self._mutex, open(self.meta_dir / "topics.lock", "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            yield

    def _write_config(self, topic: str, config: TopicConfig) -> None:
        write_atomically(self._config_path(topic), json.dumps(config.to_json(), indent=1))
        self._remember(topic, config)

    def _load_configs(self) -> None:
        """The broker's topic cache. A topic whose config file is damaged is listed but not
        cached, so that using it raises MetadataFileError (topic_config reads the file again, and
        takes it back once repaired); it is logged here, loudly, once."""
        for path in (self.meta_dir / "topics").glob("*.json"):
            try:
                self._configs[path.stem] = read_metadata(
                    path, self._parse_config)
            except MetadataFileError as exc:
                log.error("topic %s is unavailable until its config is repaired: %s",
                          path.stem, exc)
                self._damaged |= {path.stem}
        older = [topic for topic, config in self._configs.items() if config.topic_id is None]
        if older:
            with self._topics_locked():
                for topic in older:  # topics from before ids: given one now, for good
                    self._write_config(topic, replace(self._configs[topic],
                                                      topic_id=new_topic_id()))

    def new_topic_config(self, partitions: int, configs: Mapping[str, Any]) -> TopicConfig:
        """A new topic's config: `configs` (Kafka names; InvalidConfigError naming a bad one)
        over the broker's defaults, and a new topic id."""
        return TopicConfig(partitions=partitions, topic_id=new_topic_id(),
                           broker_defaults=self.topic_defaults).with_kafka_configs(configs)

    def _parse_config(self, text: str) -> TopicConfig:
        return TopicConfig.from_json(json.loads(text), self.topic_defaults)

    def topic_by_id(self, topic_id: uuid.UUID) -> str | None:
        """The name of the topic with this id (the broker's cache), or None."""
        configs, cached = self._configs, self._ids
        if cached is None or cached[0] is not configs:  # a fetch by id asks this per topic
            cached = self._ids = (configs, {config.topic_id: name for name, config in
                                            configs.items() if config.topic_id is not None})
        return cached[1].get(topic_id)

    def topics(self) -> list[str]:
        if not self.exclusive:
            return sorted(p.stem for p in (self.meta_dir / "topics").glob("*.json"))
        configs, damaged, cached = self._configs, self._damaged, self._names
        if cached is None or cached[0] is not configs or cached[1] is not damaged:
            cached = self._names = (configs, damaged, sorted(configs.keys() | damaged))
        return list(cached[2])

    def exists(self, topic: str) -> bool:
        if self.exclusive and topic in self._configs:
            return True
        return self._config_path(topic).exists() if valid_topic_name(topic) else False

    def partition_count(self) -> int:
        """Partitions of every topic together (the broker's cache; embedded: read afresh)."""
        if self.exclusive:
            return sum(config.partitions for config in self._configs.values())
        return sum(self.topic_config(topic).partitions for topic in self.topics())

    def topic_config(self, topic: str) -> TopicConfig:
        """The topic's current config: the broker's cached one, or (embedded clients) read
        afresh, since another process may have changed it."""
        if self.exclusive:
            cached = self._configs.get(topic)
            if cached is not None:
                return cached
        if not valid_topic_name(topic):
            raise UnknownTopicOrPartitionError(f"unknown topic {topic!r}")
        try:
            config = read_metadata(self._config_path(topic),
                                   self._parse_config)
        except FileNotFoundError:
            self._forget(topic)
            raise UnknownTopicOrPartitionError(f"unknown topic {topic!r}") from None
        self._remember(topic, config)
        return config

    # Copy on write: the broker reads the cache in its event loop while a worker thread creates
    # topics, and a dict must not change while it is iterated.

    def _remember(self, topic: str, config: TopicConfig) -> None:
        self._configs = {**self._configs, topic: config}
        self._damaged -= {topic}

    def _forget(self, topic: str) -> None:
        if topic in self._configs or topic in self._damaged:
            self._configs = {name: c for name, c in self._configs.items() if name != topic}
            self._damaged -= {topic}

    def create_topic(self, name: str, partitions: int = 1,
                     config: dict[str, Any] | None = None) -> TopicConfig:
        validate_topic_name(name)
        if name in RESERVED_TOPICS:
            raise InvalidTopicError(f"topic name {name!r} is reserved")
        if partitions < 1:
            raise InvalidPartitionsError(f"a topic needs at least 1 partition, got {partitions}")
        topic_config = self.new_topic_config(partitions, config or {})
        with self._topics_locked():
            if self._config_path(name).exists():
                raise TopicAlreadyExistsError(f"topic {name!r} already exists")
            check_collision(name, self.topics())
            self._add_partition_dirs(name, 0, partitions, topic_config)
        return topic_config

    def delete_topic(self, name: str) -> None:
        """The topic, its files and the offsets committed for it, all gone on return."""
        with self._topics_locked():
            doomed = self._set_aside(name, self._close_topic(name))
        self.offsets.delete_topic(name)
        remove_deleted(doomed)

    # A broker deletes in two steps, so that neither stalls its event loop for long:
    # `close_topic` in the loop (it owns the partitions), then `set_aside` in a worker thread;
    # `remove_deleted` then removes the set-aside directories in another.

    def close_topic(self, name: str) -> int:
        """The topic is gone (its config, committed offsets and open partitions); returns its
        partition count, whose directories are still to be set aside."""
        with self._topics_locked():
            count = self._close_topic(name)
        self.offsets.delete_topic(name)
        return count

    def set_aside(self, name: str, partitions: int) -> list[Path]:
        """Rename the closed topic's directories to `<dir>.<uuid>-delete` (Kafka's suffix), so
        its name can be used again at once; returns the new paths."""
        with self._topics_locked():
            return self._set_aside(name, partitions)

    def _close_topic(self, name: str) -> int:
        config = self.topic_config(name)
        self._config_path(name).unlink()
        self._forget(name)
        for p in range(config.partitions):
            partition = self._partitions.pop((name, p), None)
            if partition is not None:
                partition.close(save=False)
        return config.partitions

    def _set_aside(self, name: str, partitions: int) -> list[Path]:
        doomed = []
        for p in range(partitions):
            path = self.data_dir / f"{name}-{p}"
            target = path.with_name(f"{path.name}.{uuid.uuid4().hex}{DELETED_SUFFIX}")
            try:
                path.rename(target)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise storage_error(exc, f"setting aside {path}") from None
            doomed.append(target)
        return doomed

    def add_partitions(self, name: str, total: int) -> TopicConfig:
        with self._topics_locked():
            config = self.topic_config(name)
            if total <= config.partitions:
                raise InvalidPartitionsError(
                    f"topic {name!r} has {config.partitions} partitions; the new count must be "
                    f"larger, got {total}"
                )
            new = replace(config, partitions=total)
            self._add_partition_dirs(name, config.partitions, total, new)
        return new

    def _add_partition_dirs(self, name: str, first: int, end: int, config: TopicConfig) -> None:
        """Make the directories of partitions [first, end), then write the topic's config: the
        topic changes only then. If any of it fails, the new directories go again and
        KafkaStorageError is raised: no half-made topic or partition is left behind."""
        made: list[Path] = []
        try:
            for p in range(first, end):
                path = self.data_dir / f"{name}-{p}"
                try:
                    path.mkdir()
                except FileExistsError:
                    continue  # left by a crash: not ours to remove
                made.append(path)
            self._write_config(name, config)
        except (OSError, KafkaStorageError) as exc:
            for path in made:
                shutil.rmtree(path, ignore_errors=True)
            if isinstance(exc, OSError):
                raise storage_error(exc, f"creating partitions of {name!r}") from exc
            raise

    def alter_topic_config(self, name: str, set_configs: dict[str, Any],
                           delete: Iterable[str] = ()) -> TopicConfig:
        with self._topics_locked():
            new = self.topic_config(name).with_kafka_configs(set_configs, tuple(delete))
            self._write_config(name, new)
        return new

    # --- partitions ---------------------------------------------------------------------------

    def _open_partition(self, topic: str, index: int) -> Partition:
        with self._mutex:
            found = self._partitions.get((topic, index))
            if found is not None:
                return found
            config = self.topic_config(topic)
            if not 0 <= index < config.partitions:
                raise UnknownTopicOrPartitionError(
                    f"topic {topic!r} has no partition {index} (it has {config.partitions})"
                )
            kind = Partition if self.exclusive else SharedPartition
            try:  # opening creates its files, a new partition's first segment among them
                partition = kind(topic, index, self.data_dir / f"{topic}-{index}",
                                 lambda: self._configs.get(topic, config), clock=self.clock,
                                 producer_id_expiration_ms=self.producer_id_expiration_ms)
            except OSError as exc:
                raise storage_error(exc, f"opening partition {topic}-{index}") from exc
            self._partitions[(topic, index)] = partition
            return partition

    def open_partitions(self) -> list[Partition]:
        return list(self._partitions.values())

    # --- housekeeping -------------------------------------------------------------------------

    def flush(self) -> None:
        for partition in self.open_partitions():
            partition.flush()

    def apply_retention(self, now_ms: int | None = None) -> int:
        return sum(self.retention_steps(now_ms))

    def retention_steps(self, now_ms: int | None = None) -> Iterator[int]:
        """Retention applied one partition at a time, yielding the segments each lost: the
        broker's event loop serves others between steps (opening thousands of partitions takes
        seconds)."""
        for topic in self.topics():
            try:
                config = self.topic_config(topic)
            except (UnknownTopicOrPartitionError, MetadataFileError):
                continue  # deleted meanwhile, or damaged: the broker said so at startup
            for p in range(config.partitions):
                try:
                    yield self.partition(topic, p).apply_retention(now_ms)
                except UnknownTopicOrPartitionError:
                    break  # deleted meanwhile

    def compacted_partitions(self) -> Iterator[Partition]:
        """The partitions of every topic whose cleanup.policy includes compact (the cleaner's)."""
        for topic in self.topics():
            try:
                config = self.topic_config(topic)
            except (UnknownTopicOrPartitionError, MetadataFileError):
                continue
            if config.compacts:
                for p in range(config.partitions):
                    try:
                        yield self.partition(topic, p)
                    except UnknownTopicOrPartitionError:
                        break  # deleted meanwhile

    def _flush_every_interval(self) -> None:
        while not self._closed.wait(self.flush_policy.interval_ms / 1000):
            self.flush()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self._flusher is not None:
            self._flusher.join()
        with self._mutex:
            if self.flush_policy.mode != "never":
                self.flush()
            for partition in self._partitions.values():
                partition.close()
            self._partitions.clear()
            self.offsets.close()
            self.lock.release()
