"""The console over the wire (`minikafka console -b HOST:PORT`): any Kafka-compatible cluster
through confluent-kafka's AdminClient, Consumer and Producer, so it keeps working once the shop
moves to a real Kafka. What the admin API cannot give (open transactions, bytes on disk, the
brokers' own rates) is said rather than guessed; the rate of records in is read from the end
offsets.

Every client call blocks, so each runs in a worker thread, off the console's event loop."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, TypeVar

from ..cli.backends import TIMEOUT, KafkaBackend, Settings
from ..cli.groups import GroupsAdmin, ResetTo, reset_plan
from ..errors import ErrorCode, KafkaError
from ..records import Record
from . import browse
from .cluster import Json, Unsupported

_T = TypeVar("_T")
TP = tuple[str, int]
READ_SECONDS = 2.0  # a read that gets nothing for this long is at the end


class _Fetcher:
    """One Consumer shared by a request's readers, assigned to one partition at a time. It goes
    on where the last read stopped (fetched records not yet handed out wait in `pending`), and
    is assigned again only when a read starts elsewhere."""

    def __init__(self, consumer: Any, topic: str) -> None:
        self.consumer = consumer
        self.topic = topic
        self.at: tuple[int, int] | None = None  # (partition, the offset reads go on from)
        self.pending: deque[Record] = deque()

    def read(self, partition: int, position: int, upper: int, max_bytes: int
             ) -> tuple[list[Record], int, int]:
        from confluent_kafka import TopicPartition

        tp = TopicPartition(self.topic, partition, position)
        if self.at != (partition, position):
            self.consumer.assign([tp])
            self.pending.clear()
        records: list[Record] = []
        size, after = 0, position
        deadline = time.monotonic() + READ_SECONDS
        while size < max_bytes and after < upper and time.monotonic() < deadline:
            if not self.pending:
                got = self.consumer.consume(100, 0.2)
                self.pending.extend(
                    Record(m.value(), m.key(), tuple(m.headers() or ()), m.timestamp()[1],
                           m.offset()) for m in got if m.error() is None)
                if not got:  # control records (transaction markers) never come: the position
                    (now,) = self.consumer.position([tp])  # passes them
                    after = max(after, now.offset)
                continue
            record = self.pending.popleft()
            if record.offset >= after:
                records.append(record)
                size += len(record.key or b"") + len(record.value or b"")
                after = record.offset + 1
        self.at = (partition, after)
        return records, size, after


class _Reader:
    """One partition, read through the request's `_Fetcher` (a `browse.PartitionReader`)."""

    def __init__(self, fetcher: _Fetcher, partition: int, low: int, high: int) -> None:
        self._fetcher = fetcher
        self.partition = partition
        self.log_start_offset = low
        self.high_watermark = high

    async def offset_for_timestamp(self, timestamp: int) -> int | None:
        from confluent_kafka import TopicPartition

        (found,) = await asyncio.to_thread(self._fetcher.consumer.offsets_for_times, [
            TopicPartition(self._fetcher.topic, self.partition, timestamp)], timeout=TIMEOUT)
        return None if found.offset < 0 else int(found.offset)

    async def read(self, position: int, max_bytes: int) -> tuple[list[Record], int, int]:
        return await asyncio.to_thread(self._fetcher.read, self.partition, position,
                                       self.high_watermark, max_bytes)


class Remote:
    """A Kafka-compatible cluster at `bootstrap`; `settings` are librdkafka properties."""

    def __init__(self, bootstrap: str, settings: Settings | None = None) -> None:
        self.bootstrap = bootstrap
        self._settings = settings or {}
        self._kafka = KafkaBackend(bootstrap, self._settings)
        self._groups = GroupsAdmin(self._kafka)
        self._producer: Any = None
        self.stopping = False  # set once the console stops: live streams end

    # --- blocking helpers, run in threads ---

    def _wait(self, futures: Iterable[Any]) -> list[Any]:
        return self._kafka._wait(futures)

    def _topic_partitions(self) -> dict[str, list[int]]:
        topics = self._kafka.admin.list_topics(timeout=TIMEOUT).topics
        return {name: sorted(meta.partitions) for name, meta in sorted(topics.items())
                if not name.startswith("__") and meta.error is None}

    def _watermarks(self, tps: Sequence[TP]) -> dict[TP, tuple[int, int]]:
        low = self._groups.offsets(tps, "earliest")
        high = self._groups.offsets(tps, "latest")
        return {tp: (low[tp], high[tp]) for tp in tps}

    def _topics_json(self, wanted: Sequence[str] | None = None) -> list[Json]:
        from confluent_kafka.admin import ConfigResource

        topics = self._topic_partitions()
        if wanted is not None:
            for name in wanted:
                if name not in topics:
                    raise KafkaError(f"unknown topic {name!r}",
                                     ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            topics = {name: topics[name] for name in wanted}
        marks = self._watermarks([(t, p) for t, ps in topics.items() for p in ps])
        resources = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics]
        configs = self._wait(self._kafka.admin.describe_configs(resources).values()) \
            if resources else []
        shown = []
        for (name, indexes), entries in zip(topics.items(), configs, strict=True):
            parts: list[Json] = [{"partition": p, "start_offset": marks[name, p][0],
                      "end_offset": marks[name, p][1], "stable_offset": None,
                      "messages": marks[name, p][1] - marks[name, p][0], "size": None,
                      "segments": None} for p in indexes]
            values = {k: e.value for k, e in entries.items()}
            shown.append({
                "name": name, "partitions": parts,
                "messages": sum(p["messages"] for p in parts), "size": None,
                "retention_ms": int(values.get("retention.ms") or -1),
                "retention_bytes": int(values.get("retention.bytes") or -1),
                "configs": [{"name": k, "value": e.value, "default": bool(e.is_default)}
                            for k, e in sorted(entries.items()) if e.value is not None]})
        return shown

    def _overview(self, topics: list[Json], groups: int) -> Json:
        cluster = self._wait([self._kafka.admin.describe_cluster()])[0]
        return {"broker": self.bootstrap, "cluster_id": cluster.cluster_id,
                "node_id": None if cluster.controller is None else cluster.controller.id,
                "remote": True, "brokers": [f"{n.id}@{n.host}:{n.port}" for n in cluster.nodes],
                "data_dir": None, "flush": None, "started": None, "uptime_s": None,
                "topics": len(topics),
                "partitions": sum(len(t["partitions"]) for t in topics),
                "messages": sum(t["messages"] for t in topics), "size": None,
                "groups": groups, "open_transactions": None, "connections": None}

    def _group_ids(self) -> list[str]:
        return [group for group, _state in self._groups.list_groups()]

    def _groups_json(self, groups: list[str]) -> list[Json]:
        """Each group as `service.describe_group` shows it."""
        described = self._groups.describe_many(groups)
        committed = {g: self._groups.committed(g) for g in groups}
        owned = {g: {tp: m.client_id or m.member_id
                     for m in described[g].members for tp in m.partitions}
                 for g in groups}
        ends = self._groups.offsets({tp for g in groups for tp in [*committed[g], *owned[g]]},
                                    "latest")
        shown = []
        for g in groups:
            d = described[g]
            rows: list[Json] = [{"topic": t, "partition": p, "committed": committed[g].get((t, p)),
                     "end_offset": ends[t, p], "owner": owned[g].get((t, p)),
                     "lag": (max(ends[t, p] - committed[g][t, p], 0)
                             if (t, p) in committed[g] else None)}
                    for t, p in sorted({*committed[g], *owned[g]})]
            members = [{"member_id": m.member_id, "instance_id": m.instance_id,
                        "client_id": m.client_id, "client_host": m.host,
                        "assignment": _by_topic(m.partitions)}
                       for m in d.members]
            shown.append({"group": g, "state": d.state, "protocol": d.assignor or "",
                          "members": members, "offsets": rows,
                          "topics": sorted({t for t, _ in committed[g]}),
                          "lag": sum(r["lag"] or 0 for r in rows)})
        return shown

    def _describe_group(self, group: str) -> Json:
        (shown,) = self._groups_json([group])
        if shown["state"] == "Dead" and not shown["offsets"]:
            raise KafkaError(f"consumer group {group!r} does not exist",
                             ErrorCode.GROUP_ID_NOT_FOUND)
        return shown

    def _reset(self, group: str, topic: str, to: ResetTo, value: int | None) -> Json:
        if self._groups.describe(group).members:
            raise KafkaError(f"consumer group {group!r} has active members; stop its consumers "
                             "before resetting its offsets", ErrorCode.NON_EMPTY_GROUP)
        tps = [(topic, p) for p in self._topic_partitions().get(topic, [])]
        self._groups.alter(group, reset_plan(self._groups, tps, to, value))
        return self._describe_group(group)

    def _readers(self, topic: str, partition: int | None) -> tuple[list[_Reader], Any]:
        indexes = self._topic_partitions().get(topic)
        if indexes is None:
            raise KafkaError(f"unknown topic {topic!r}", ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        if partition is not None:
            if partition not in indexes:
                raise KafkaError(f"unknown partition {topic}-{partition}",
                                 ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            indexes = [partition]
        marks = self._watermarks([(topic, p) for p in indexes])
        consumer = self._kafka._consumer({  # bounded prefetch: 4 MiB, not librdkafka's 64
            "group.id": "minikafka-console", "isolation.level": "read_uncommitted",
            "enable.partition.eof": False, "fetch.max.bytes": browse.READ_BYTES * 4,
            "max.partition.fetch.bytes": browse.READ_BYTES, "queued.max.messages.kbytes": 4096,
            "fetch.wait.max.ms": 100})
        fetcher = _Fetcher(consumer, topic)
        return [_Reader(fetcher, p, *marks[topic, p]) for p in indexes], consumer

    def _produce(self, topic: str, partition: int | None, key: str | None, value: str | None,
                 headers: Sequence[tuple[str, str]]) -> Json:
        from confluent_kafka import Producer

        if self._producer is None:
            self._producer = Producer({"bootstrap.servers": self.bootstrap, "log_level": 0,
                                       "acks": "all", **self._settings})
        done: list[Any] = []
        extra = {} if partition is None else {"partition": partition}
        self._producer.produce(topic, key=None if key is None else key.encode(),
                               value=None if value is None else value.encode(),
                               headers=[(n, v.encode()) for n, v in headers],
                               on_delivery=lambda err, msg: done.append((err, msg)), **extra)
        self._producer.flush(TIMEOUT)
        if not done:
            raise KafkaError(f"no answer from {self.bootstrap} in {TIMEOUT:.0f} s")
        ((err, msg),) = done
        if err is not None:
            raise KafkaError(err.str(), err.code())
        return {"topic": topic, "partition": msg.partition(), "offset": msg.offset()}

    # --- the Cluster interface ---

    async def _run(self, call: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.to_thread(call, *args)

    async def traffic(self) -> dict[str, float]:
        """Only the records appended are known: the sum of the end offsets."""
        def total() -> float:
            tps = [(t, p) for t, ps in self._topic_partitions().items() for p in ps]
            return float(sum(self._groups.offsets(tps, "latest").values()))
        return {"bytes_in": 0.0, "records_in": await self._run(total), "bytes_out": 0.0,
                "records_out": 0.0}

    async def overview(self) -> Json:
        def build() -> Json:
            return self._overview(self._topics_json(), len(self._group_ids()))
        return await self._run(build)

    async def live(self) -> Json:
        def build() -> Json:
            topics = self._topics_json()
            groups = self._groups_json(self._group_ids())
            return {**self._overview(topics, len(groups)), "topic_list": topics,
                    "group_list": groups, "transaction_list": []}
        return await self._run(build)

    async def list_topics(self) -> list[Json]:
        return await self._run(self._topics_json)

    async def describe_topic(self, name: str) -> Json:
        return (await self._run(self._topics_json, [name]))[0]

    async def create_topic(self, name: str, partitions: int | None,
                           configs: dict[str, str]) -> Json:
        await self._run(self._kafka.create_topic, name, partitions or -1, configs)
        return await self.describe_topic(name)

    async def delete_topic(self, name: str) -> None:
        await self._run(self._kafka.delete_topic, name)

    async def add_partitions(self, name: str, total: int) -> Json:
        await self._run(self._kafka.add_partitions, name, total)
        return await self.describe_topic(name)

    async def alter_configs(self, name: str, configs: dict[str, str]) -> Json:
        await self._run(self._kafka.alter_topic, name, configs, [])
        return await self.describe_topic(name)

    async def purge_topic(self, name: str, partition: int | None) -> Json:
        await self._run(self._kafka.delete_records, name,
                        None if partition is None else [partition], -1)
        return await self.describe_topic(name)

    async def browse(self, topic: str, partition: int | None, **page: Any) -> Json:
        readers, consumer = await self._run(self._readers, topic, partition)
        try:
            return await browse.browse(topic, readers, **page)
        finally:
            await self._run(consumer.close)

    async def export(self, topic: str, partition: int | None, **page: Any
                     ) -> AsyncIterator[str]:
        readers, consumer = await self._run(self._readers, topic, partition)
        try:
            async for line in browse.export(topic, readers, **page):
                yield line
        finally:
            await self._run(consumer.close)

    async def produce(self, topic: str, partition: int | None, key: str | None,
                      value: str | None, headers: Sequence[tuple[str, str]]) -> Json:
        return await self._run(self._produce, topic, partition, key, value, headers)

    async def list_groups(self) -> list[Json]:
        return await self._run(lambda: self._groups_json(self._group_ids()))

    async def describe_group(self, group: str) -> Json:
        return await self._run(self._describe_group, group)

    async def delete_group(self, group: str) -> None:
        await self._run(self._groups.delete, group)

    async def reset_offsets(self, group: str, topic: str, to: str, value: int | None) -> Json:
        return await self._run(self._reset, group, topic, to, value)

    async def list_transactions(self) -> list[Json]:
        raise Unsupported("open transactions are not shown for a remote cluster: "
                          "confluent-kafka's AdminClient has no ListTransactions")


def _by_topic(partitions: Iterable[TP]) -> list[Json]:
    topics: dict[str, list[int]] = {}
    for topic, partition in partitions:
        topics.setdefault(topic, []).append(partition)
    return [{"topic": t, "partitions": sorted(ps)} for t, ps in sorted(topics.items())]


def serve(bootstrap: str, host: str, port: int, settings: Settings) -> int:
    """`minikafka console -b`: serve the console of the cluster at `bootstrap` until SIGINT or
    SIGTERM; the address goes to stdout once it listens."""
    return asyncio.run(_serve(bootstrap, host, port, settings))


async def _serve(bootstrap: str, host: str, port: int, settings: Settings) -> int:
    import signal

    from ..httpserver import AppServer
    from .app import console_app

    cluster = await asyncio.to_thread(Remote, bootstrap, settings)
    server = await AppServer.serve(console_app(cluster), host, port, host, "web console",
                                   "pick another with --port, 0 for a free one")
    print(f"minikafka console for {bootstrap} at {server.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    cluster.stopping = True  # live streams end
    await server.stop()
    return 0
