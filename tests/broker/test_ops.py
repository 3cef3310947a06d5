"""The service layer (`broker/ops.py`) on a real broker's context, without a client in between:
what each change brings with it (wake-ups, metrics, durability) and what it refuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from kafka.protocol.api_key import ApiKey

from minikafka.broker import ops
from minikafka.broker.config import BrokerConfig
from minikafka.broker.context import BrokerContext
from minikafka.broker.groups import OffsetCommitCheck
from minikafka.broker.handlers.fetch import poll_fetch
from minikafka.broker.server import Broker
from minikafka.errors import ErrorCode, KafkaError
from minikafka.log import OffsetAndMetadata
from minikafka.protocol.codec import RequestHeader
from minikafka.protocol.fetch import FetchPartition, FetchRequest
from minikafka.records import encode_batch

BATCH = encode_batch([(b"key", b"value", [], None)])


@asynccontextmanager
async def started(data_dir: Path, flush: str) -> AsyncIterator[BrokerContext]:
    broker = Broker(BrokerConfig(data_dir=str(data_dir), port=0, ui=False, flush=flush))
    await broker.start()
    assert broker.ctx is not None
    try:
        yield broker.ctx
    finally:
        await broker.stop()


def run(tmp_path: Path, body: Callable[[BrokerContext], Awaitable[None]],
        flush: str = "never") -> None:
    async def main() -> None:
        async with started(tmp_path / "data", flush) as ctx:
            await body(ctx)

    asyncio.run(main())


def fsyncs(ctx: BrokerContext) -> float:
    return ctx.metrics.registry.get_sample_value("minikafka_fsync_duration_seconds_count") or 0


def records_in(ctx: BrokerContext, topic: str) -> float:
    return ctx.metrics.registry.get_sample_value("minikafka_topic_records_in_total",
                                                 {"topic": topic}) or 0


def long_poll(ctx: BrokerContext, topic: str) -> asyncio.Future[object]:
    """A Fetch of the topic's partition 0 from offset 0, waiting (the Fetch handler's long poll,
    filed in ctx.appends); the future gets its answer."""
    answered: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    request = FetchRequest(max_wait_ms=10_000, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                           session_id=0, session_epoch=-1, forgotten=[],
                           partitions=[FetchPartition(topic, None, 0, 0, 1 << 20)])
    poll_fetch(ctx, RequestHeader(ApiKey.Fetch, 12, 1, "test"), request, answered.set_result)
    return answered


@pytest.mark.parametrize(("flush", "synced"), [("always", 1), ("never", 0)])
def test_produce_wakes_long_polls_counts_and_syncs_by_the_flush_policy(
        tmp_path: Path, flush: str, synced: int) -> None:
    async def body(ctx: BrokerContext) -> None:
        await ops.create_topic(ctx, "t", 1)
        poll = long_poll(ctx, "t")
        await asyncio.sleep(0.05)
        assert not poll.done()
        info = await ops.produce(ctx, "t", 0, BATCH)
        await asyncio.wait_for(poll, 1)
        assert (info.base_offset, ctx.log.partition("t", 0).high_watermark) == (0, 1)
        assert (records_in(ctx, "t"), fsyncs(ctx)) == (1, synced)

    run(tmp_path, body, flush)


def test_a_refused_batch_changes_nothing(tmp_path: Path) -> None:
    async def body(ctx: BrokerContext) -> None:
        await ops.create_topic(ctx, "t", 1)
        with pytest.raises(KafkaError) as refused:
            ops.append(ctx, "t", 0, BATCH + BATCH)
        assert refused.value.code == ErrorCode.INVALID_RECORD
        with pytest.raises(KafkaError) as unknown:
            ops.append(ctx, "t", 1, BATCH)
        assert unknown.value.code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert (ctx.log.partition("t", 0).high_watermark, records_in(ctx, "t")) == (0, 0)

    run(tmp_path, body)


def test_commit_offsets_answers_per_partition_and_syncs_once(tmp_path: Path) -> None:
    async def body(ctx: BrokerContext) -> None:
        await ops.create_topic(ctx, "t", 2)
        errors = await ops.commit_offsets(ctx, OffsetCommitCheck("readers"), {
            ("t", 0): OffsetAndMetadata(5),
            ("t", 1): OffsetAndMetadata(6, metadata="m" * (ops.MAX_METADATA_BYTES + 1)),
            ("t", 2): OffsetAndMetadata(7),
        })
        assert errors == {("t", 0): ErrorCode.NONE,
                          ("t", 1): ErrorCode.OFFSET_METADATA_TOO_LARGE,
                          ("t", 2): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
        assert {tp: o.offset for tp, o in ctx.log.offsets.fetch("readers").items()} == {
            ("t", 0): 5}
        assert fsyncs(ctx) == 1
        nameless = await ops.commit_offsets(ctx, OffsetCommitCheck(""),
                                            {("t", 0): OffsetAndMetadata(1)})
        assert nameless == {("t", 0): ErrorCode.INVALID_GROUP_ID}
        assert fsyncs(ctx) == 1  # nothing stored, nothing to sync

    run(tmp_path, body, "always")


def test_reset_offsets_commits_every_partition_of_the_topic(tmp_path: Path) -> None:
    async def body(ctx: BrokerContext) -> None:
        await ops.create_topic(ctx, "t", 2)
        for _ in range(3):
            await ops.produce(ctx, "t", 0, BATCH)
        await ops.reset_offsets(ctx, "readers", "t", "latest")
        assert {tp: o.offset for tp, o in ctx.log.offsets.fetch("readers").items()} == {
            ("t", 0): 3, ("t", 1): 0}
        await ops.reset_offsets(ctx, "readers", "t", "offset", 1)
        assert ctx.log.offsets.fetch("readers")[("t", 0)].offset == 1
        with pytest.raises(KafkaError) as refused:
            await ops.reset_offsets(ctx, "readers", "t", "timestamp")
        assert refused.value.code == ErrorCode.INVALID_REQUEST

    run(tmp_path, body)


def test_validate_only_topic_changes_check_but_change_nothing(tmp_path: Path) -> None:
    async def body(ctx: BrokerContext) -> None:
        config = await ops.create_topic(ctx, "t", 3, {"retention.ms": "1000"}, validate_only=True)
        assert (config.partitions, config.retention_ms) == (3, 1000)
        assert not ctx.log.exists("t")
        await ops.create_topic(ctx, "t")  # the broker's num.partitions
        assert ctx.log.topic_config("t").partitions == ctx.config.num_partitions
        with pytest.raises(KafkaError) as exists:
            await ops.create_topic(ctx, "t", validate_only=True)
        assert exists.value.code == ErrorCode.TOPIC_ALREADY_EXISTS
        await ops.add_partitions(ctx, "t", 5, validate_only=True)
        ops.alter_topic_configs(ctx, "t", {"retention.ms": "1000"}, validate_only=True)
        config = ctx.log.topic_config("t")
        assert config.partitions == ctx.config.num_partitions
        assert "retention.ms" in config.defaults()  # not overridden
        with pytest.raises(KafkaError) as shrink:
            await ops.add_partitions(ctx, "t", 1, validate_only=True)
        assert shrink.value.code == ErrorCode.INVALID_PARTITIONS
        with pytest.raises(KafkaError) as bad:
            ops.alter_topic_configs(ctx, "t", {"retention.ms": "soon"})
        assert bad.value.code == ErrorCode.INVALID_CONFIG
        await ops.delete_topic(ctx, "t")
        assert not ctx.log.exists("t")

    run(tmp_path, body)
