"""The broker's service layer: every change a request makes to the log or to committed offsets,
with the steps that must come with it. (The group service, `ctx.groups`, drops the offsets of the
groups it deletes or expires itself.)

The Kafka handlers (decode → op → encode) and the web console both change the broker through
these, so a change is the same whoever asks for it: an appended batch wakes the fetches waiting
for it and is counted; an acknowledged append or commit waits for the flush policy (under
`always`, a group-committed fdatasync); topics change with the same checks and log lines. Reading
is `snapshot.py`'s. Everything runs in the broker's event loop, except the making of partition
directories (thousands for one request), which runs in a worker thread while other clients are
served; refusals raise `KafkaError`s.

A write the disk refuses (full, quota, I/O error) is a `KafkaStorageError` from the log, which
left everything as it was. Each passes through `storage_failed` here: counted, logged once
when writes start failing, and answered as Kafka answers it; the broker serves on, and the same
request succeeds once there is room again.

mypyc compiles this module (pyproject's [tool.minikafka.build]): an append's glue runs here. No
interpreted subclass of its classes, no monkeypatching.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Collection, Coroutine, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, ParamSpec, TypeVar

from ..errors import (
    CorruptRecordError,
    ErrorCode,
    InvalidPartitionsError,
    InvalidRecordError,
    KafkaError,
    KafkaStorageError,
    NotEnoughReplicasError,
    PolicyViolationError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from ..log import (
    AppendInfo,
    InvalidProducerEpochError,
    OffsetAndMetadata,
    Partition,
    TopicConfig,
    validate_topic_name,
)
from ..log.config import check_collision
from ..log.durable import read_metadata, write_atomically
from ..log.manager import remove_deleted
from ..log.offsets import TopicPartition
from ..offset_reset import check_reset, reset_target
from ..records import (
    ATTRIBUTES_AT,
    HEADER_SIZE,
    MAGIC,
    MAGIC_AT,
    TRANSACTIONAL_BIT,
    batch_size_at,
    read_header,
)
from ..txn.coordinator import Transit, TxnCheck
from .acls import CLUSTER_NAME, AclBinding, AclOperation, ResourceType
from .appends import Flushable
from .context import BrokerContext, authorize, authorized, refusal
from .groups import OffsetCommitCheck
from .quotas import Entity, Ops
from .scram import ScramCredential, ScramMechanism
from .snapshot import topic_partitions

log = logging.getLogger("minikafka.broker")

MAX_METADATA_BYTES = 4096  # Kafka's offset.metadata.max.bytes
QUOTAS_FILE = "client-quotas.json"  # in the data directory's __meta


# --- storage failures ----------------------------------------------------------------------------


def storage_failed(ctx: BrokerContext, exc: KafkaStorageError) -> None:
    """Count a refused write; log only the first of a run (a full disk refuses every produce)."""
    ctx.metrics.storage_errors.inc()
    if not ctx.storage_failing:
        ctx.storage_failing = True
        log.error("%s; writes are refused with KAFKA_STORAGE_ERROR until the disk takes them "
                  "again (reads go on)", str(exc))  # not the error: its frames hold files


def storage_worked(ctx: BrokerContext) -> None:
    """A write succeeded: after a run of failures, say that writes work again."""
    if ctx.storage_failing:
        ctx.storage_failing = False
        log.warning("writes to %s work again", ctx.config.data_dir)


@contextmanager
def _storing(ctx: BrokerContext) -> Iterator[None]:
    """Around an op that writes: its storage failure counted and re-raised, its success noted."""
    try:
        yield
    except KafkaStorageError as exc:
        storage_failed(ctx, exc)
        raise
    storage_worked(ctx)


async def durable(ctx: BrokerContext, targets: Collection[Flushable]) -> None:
    """Return once `targets` (partitions, the offsets store) hold what was written to them as
    durably as the flush policy promises an acknowledged write: under `always`, after one
    group-committed fdatasync each, shared with every other request waiting on it."""
    if targets and ctx.log.flush_policy.mode == "always":
        await asyncio.gather(*(ctx.commits.sync(target) for target in targets))


# --- records -------------------------------------------------------------------------------------


Batch = bytes | memoryview
_ATTRIBUTES_LOW_BYTE = ATTRIBUTES_AT + 1  # of the int16 attributes: bit 4 transactional, 5 control


def check_single_batch(records: Batch | None) -> Batch:
    """`records`, which must be exactly one RecordBatch v2 (as Produce v3+ carries per
    partition)."""
    if not records:
        raise InvalidRecordError("produce request without a record batch")
    if len(records) < HEADER_SIZE:
        raise CorruptRecordError(f"record batch truncated: {len(records)} bytes")
    if records[MAGIC_AT] != MAGIC:
        raise InvalidRecordError("record batch magic must be 2 for produce v3+")
    size = batch_size_at(records)
    if size > len(records):
        raise CorruptRecordError(f"record batch claims {size} bytes, {len(records)} sent")
    if size < len(records):
        raise InvalidRecordError("produce requests carry exactly one record batch per partition")
    return records


def _partition(ctx: BrokerContext, topic: str, index: int) -> Partition:
    """The partition to append to; the first use opens it, creating files that may fail."""
    try:
        return ctx.log.partition(topic, index)
    except KafkaStorageError as exc:
        storage_failed(ctx, exc)
        raise


def append(ctx: BrokerContext, topic: str, index: int, records: Batch | None, acks: int = 1,
           unwritten: Callable[[KafkaStorageError], None] | None = None
           ) -> tuple[Partition, AppendInfo]:
    """Append one record batch, checked against its records by the log, then wake the fetches
    waiting on the partition and count it. The topic must exist: as in Kafka, only
    Metadata creates topics, so a deleted one does not come back while producers run. Waiting
    for durability is `durable`'s part, so that a request appending to many partitions waits
    for all of them at once.

    Given `unwritten`, an acks=1 batch may be held while appends are (AppendNotifier.hold): it
    is then written by ctx.appends.write_held, and if that write fails, `unwritten` hears why
    (before the answer leaves: it must say so)."""
    authorize(ctx, AclOperation.WRITE, ResourceType.TOPIC, topic)
    try:
        partition = _partition(ctx, topic, index)
    except UnknownTopicOrPartitionError:
        validate_topic_name(topic)  # a name no topic could have is INVALID_TOPIC_EXCEPTION
        raise
    batch = check_single_batch(records)
    if batch[_ATTRIBUTES_LOW_BYTE] & TRANSACTIONAL_BIT:
        verify_transactional(ctx, batch, (topic, index))
    if acks == -1 and partition.config.min_insync_replicas > 1:
        raise NotEnoughReplicasError(
            f"acks=all needs min.insync.replicas={partition.config.min_insync_replicas} in-sync "
            f"replicas of {topic}-{index}; this single node is its only replica")
    group = ctx.appends.held
    writes = None
    if group is not None and unwritten is not None and acks == 1:
        writes = group.get(partition)
        if writes is None:
            writes = group[partition] = HeldWrites(ctx, topic)
    try:
        info = partition.append(batch, None if writes is None else writes.written)
    except KafkaStorageError as exc:
        storage_failed(ctx, exc)
        raise
    count = info.last_offset - info.base_offset + 1
    if writes is not None and partition.holding:  # so it held this batch
        writes.add(len(batch), count, unwritten)
    else:  # a producer's retry of a batch already stored is not counted
        _written(ctx, topic, len(batch), count, counted=not info.duplicate)
    ctx.appends.notify(topic, index)  # fetches woken run after any held write
    return partition, info


def _written(ctx: BrokerContext, topic: str, size: int, records: int, counted: bool = True
             ) -> None:
    """Batches are written: say so if writes failed before, and count them."""
    if ctx.storage_failing:
        storage_worked(ctx)
    if counted:
        ctx.metrics.produced(topic, size, records)


class HeldWrites:
    """A partition's batches held in one read (AppendNotifier.hold): counted once the log has
    written them (`written`), else each request's `unwritten` hears why. Plain numbers and one
    callback per request: what lives until the write stays small."""

    __slots__ = ("bytes", "ctx", "records", "topic", "unwritten")

    def __init__(self, ctx: BrokerContext, topic: str) -> None:
        self.ctx, self.topic = ctx, topic
        self.bytes = self.records = 0
        self.unwritten: list[Callable[[KafkaStorageError], None]] = []

    def add(self, size: int, records: int, unwritten: Callable[[KafkaStorageError], None]
            ) -> None:
        self.bytes += size
        self.records += records
        self.unwritten.append(unwritten)

    def written(self, error: KafkaStorageError | None) -> None:
        """The log wrote the batches added since the last call, or failed to (`error`)."""
        if error is None:
            _written(self.ctx, self.topic, self.bytes, self.records)
        else:
            storage_failed(self.ctx, error)
            for tell in self.unwritten:
                tell(error)
        self.bytes = self.records = 0
        self.unwritten = []


async def produce(ctx: BrokerContext, topic: str, index: int, batch: bytes) -> AppendInfo:
    """Append one batch as Produce with acks=all does."""
    partition, info = append(ctx, topic, index, batch)
    await durable(ctx, [partition])
    return info


def delete_records(ctx: BrokerContext, topic: str, index: int, before: int) -> int:
    """DeleteRecords: move the partition's log start up to `before` (-1: the high watermark);
    returns the new log start offset."""
    authorize(ctx, AclOperation.DELETE, ResourceType.TOPIC, topic)
    partition = ctx.log.partition(topic, index)
    with _storing(ctx):
        return partition.delete_records(partition.high_watermark if before == -1 else before)


# --- committed offsets ---------------------------------------------------------------------------


def partition_error(ctx: BrokerContext, topic: str, index: int) -> ErrorCode:
    """Offsets are kept only for partitions that exist (Kafka checks its metadata too)."""
    try:
        ctx.log.partition(topic, index)
    except KafkaError as exc:
        return ErrorCode(exc.code)
    return ErrorCode.NONE


def _offsets_errors(ctx: BrokerContext, group_error: ErrorCode,
                    offsets: Mapping[TopicPartition, OffsetAndMetadata]
                    ) -> dict[TopicPartition, ErrorCode]:
    """Each offset's error (NONE: it may be committed): the group's, the partition's, or
    metadata over Kafka's offset.metadata.max.bytes."""
    errors = {}
    for tp, offset in offsets.items():
        error = group_error or _offset_error(ctx, *tp)
        if error is ErrorCode.NONE and len(offset.metadata.encode()) > MAX_METADATA_BYTES:
            error = ErrorCode.OFFSET_METADATA_TOO_LARGE
        errors[tp] = error
    return errors


def _offset_error(ctx: BrokerContext, topic: str, index: int) -> ErrorCode:
    """Offsets of a topic are committed (and deleted) only by clients that may READ it."""
    return refusal(ctx, AclOperation.READ, ResourceType.TOPIC, topic) or partition_error(
        ctx, topic, index)


async def commit_offsets(ctx: BrokerContext, check: OffsetCommitCheck,
                         offsets: Mapping[TopicPartition, OffsetAndMetadata]
                         ) -> dict[TopicPartition, ErrorCode]:
    """OffsetCommit: the group coordinator decides first (every partition shares its error);
    then each partition is checked, and the valid ones are stored together in one write, made
    durable before this returns. Returns each partition's error."""
    if not check.group_id:
        group_error = ErrorCode.INVALID_GROUP_ID
    elif code := refusal(ctx, AclOperation.READ, ResourceType.GROUP, check.group_id):
        group_error = code
    else:
        group_error = await ctx.groups.call(ctx.groups.coordinator.validate_offset_commit,
                                            check, ErrorCode.NOT_COORDINATOR)
    errors = _offsets_errors(ctx, group_error, offsets)
    accepted = {tp: offset for tp, offset in offsets.items() if not errors[tp]}
    if accepted:
        try:
            with _storing(ctx):
                ctx.log.offsets.commit(check.group_id, accepted)
        except KafkaStorageError:
            # Kafka's answer when its offsets log refuses the append (the group coordinator's
            # appendGroupMetadataErrorToResponseError): retriable, clients find the coordinator
            # again and retry the commit.
            return {tp: ErrorCode.NOT_COORDINATOR if tp in accepted else error
                    for tp, error in errors.items()}
        await durable(ctx, [ctx.log.offsets])
    return errors


def delete_offsets(ctx: BrokerContext, group: str, partitions: Iterable[TopicPartition]
                   ) -> tuple[ErrorCode, dict[TopicPartition, ErrorCode]]:
    """OffsetDelete: (the group's error, each partition's). A live consumer group keeps the
    offsets of the topics it is subscribed to; the others go."""
    partitions = list(partitions)
    if code := refusal(ctx, AclOperation.DELETE, ResourceType.GROUP, group):
        return code, {}
    group_error, topic_errors = ctx.groups.coordinator.offset_delete_errors(
        group, {topic for topic, _ in partitions})
    if group_error is not ErrorCode.NONE:
        return group_error, {}
    errors = {tp: _offset_error(ctx, *tp) or topic_errors[tp[0]] for tp in partitions}
    try:
        with _storing(ctx):
            ctx.log.offsets.delete(group, [tp for tp, error in errors.items()
                                           if error is ErrorCode.NONE])
    except KafkaStorageError:
        return ErrorCode.NOT_COORDINATOR, {}  # as a refused commit (see commit_offsets)
    return ErrorCode.NONE, errors


def delete_groups(ctx: BrokerContext, group_ids: Iterable[str]) -> list[tuple[str, ErrorCode]]:
    """DeleteGroups: each group's error; one whose offsets the disk cannot drop is refused as
    a refused commit is; one the client may not DELETE, GROUP_AUTHORIZATION_FAILED."""
    group_ids = list(group_ids)
    refused = {group: code for group in group_ids
               if (code := refusal(ctx, AclOperation.DELETE, ResourceType.GROUP, group))}
    try:
        with _storing(ctx):
            deleted = dict(ctx.groups.delete_groups([g for g in group_ids if g not in refused]))
    except KafkaStorageError:
        deleted = {group: ErrorCode.NOT_COORDINATOR for group in group_ids}
    return [(group, refused.get(group) or deleted[group]) for group in group_ids]


def _found_at(partition: Partition, timestamp: int | None) -> int | None:
    """The offset of `partition`'s first record at or after `timestamp`, if any."""
    found = None if timestamp is None else partition.offset_for_timestamp(timestamp)
    return None if found is None else found[0]


async def reset_offsets(ctx: BrokerContext, group: str, topic: str, to: str,
                        value: int | None = None) -> None:
    """Commit new offsets for every partition of `topic`, like kafka-consumer-groups.sh
    --reset-offsets --execute: `to` is earliest, latest, an offset or a timestamp (`value`),
    only while the group has no members, as a simple (generation-less) OffsetCommit."""
    check_reset(to, value)
    described = ctx.groups.coordinator.describe_groups([group])[0]
    if described.members:
        raise KafkaError(f"consumer group {group!r} is {described.state} with "
                         f"{len(described.members)} member(s); stop its consumers before "
                         "resetting its offsets", ErrorCode.NON_EMPTY_GROUP)
    targets = {(topic, v.partition): OffsetAndMetadata(reset_target(
                   to, value, v.log_start_offset, v.high_watermark,
                   _found_at(ctx.log.partition(topic, v.partition), value)
                   if to == "timestamp" else None))
               for v in topic_partitions(ctx.log, topic)}
    errors = await commit_offsets(ctx, OffsetCommitCheck(group), targets)
    for error in errors.values():
        if error is not ErrorCode.NONE:
            raise KafkaError(f"the commit was refused: {error.name}", error)
    log.info("group %s offsets on %s reset to %s", group, topic, to)


# --- topics --------------------------------------------------------------------------------------


def _check_room(ctx: BrokerContext, topics: int, partitions: int) -> None:
    """The broker's max.topics and max.partitions leave room for this many more."""
    if topics and len(ctx.log.topics()) + topics > ctx.config.max_topics:
        raise PolicyViolationError(f"the broker holds its max.topics ({ctx.config.max_topics})")
    total = ctx.log.partition_count() + partitions
    if total > ctx.config.max_partitions:
        raise PolicyViolationError(f"{partitions} more partition(s) would make {total}, over the "
                                   f"broker's max.partitions ({ctx.config.max_partitions})")


async def create_topic(ctx: BrokerContext, name: str, partitions: int | None = None,
                       configs: Mapping[str, str] | None = None, validate_only: bool = False
                       ) -> TopicConfig:
    """A new topic of `partitions` (None: the broker's num.partitions) with config overrides;
    `validate_only` checks the same and creates nothing."""
    if not authorized(ctx, AclOperation.CREATE, ResourceType.CLUSTER, CLUSTER_NAME):
        authorize(ctx, AclOperation.CREATE, ResourceType.TOPIC, name)
    count = ctx.config.num_partitions if partitions is None else partitions
    configs = dict(configs or {})
    async with ctx.topic_changes:  # one at a time, so that the limits hold exactly
        validate_topic_name(name)
        if ctx.log.exists(name):
            raise TopicAlreadyExistsError(f"topic {name!r} already exists")
        check_collision(name, ctx.log.topics())
        if count < 1:
            raise InvalidPartitionsError(f"a topic needs at least 1 partition, got {count}")
        config = ctx.log.new_topic_config(count, configs)
        _check_room(ctx, 1, count)
        if validate_only:
            return config
        with _storing(ctx):
            config = await asyncio.to_thread(ctx.log.create_topic, name, count, configs)
    log.info("created topic %s with %d partition(s)", name, count)
    return config


async def auto_create_topic(ctx: BrokerContext, name: str) -> None:
    """Create `name` as auto.create.topics.enable does (num.partitions, default configs); one
    that another request made meanwhile is fine. Raises InvalidTopicError for a bad name."""
    with contextlib.suppress(TopicAlreadyExistsError):
        await create_topic(ctx, name)


async def delete_topic(ctx: BrokerContext, name: str) -> None:
    """The topic, its files and the offsets committed for it. It is gone at once; its
    directories are renamed aside in a worker thread (the name is free again after that) and
    removed in another, after the answer, so no other client waits for either."""
    authorize(ctx, AclOperation.DELETE, ResourceType.TOPIC, name)
    async with ctx.topic_changes:
        with _storing(ctx):
            doomed = await asyncio.to_thread(ctx.log.set_aside, name, ctx.log.close_topic(name))
    log.info("deleted topic %s", name)
    asyncio.get_running_loop().run_in_executor(None, remove_deleted, doomed)


async def add_partitions(ctx: BrokerContext, name: str, total: int, validate_only: bool = False
                         ) -> None:
    """Grow the topic to `total` partitions (never shrink it)."""
    authorize(ctx, AclOperation.ALTER, ResourceType.TOPIC, name)
    async with ctx.topic_changes:
        current = ctx.log.topic_config(name).partitions
        if total <= current:
            raise InvalidPartitionsError(f"topic {name!r} has {current} partitions; the new "
                                         f"count must be larger, got {total}")
        _check_room(ctx, 0, total - current)
        if validate_only:
            return
        with _storing(ctx):
            await asyncio.to_thread(ctx.log.add_partitions, name, total)
    log.info("topic %s now has %d partitions", name, total)


def alter_topic_configs(ctx: BrokerContext, name: str, set_configs: Mapping[str, str],
                        delete: Iterable[str] = (), validate_only: bool = False) -> None:
    """Set some of the topic's config overrides and return others to their defaults; a bad
    name or value refuses the whole change."""
    authorize(ctx, AclOperation.ALTER_CONFIGS, ResourceType.TOPIC, name)
    delete = tuple(delete)
    ctx.log.topic_config(name).with_kafka_configs(dict(set_configs), delete)
    if not validate_only:
        with _storing(ctx):
            ctx.log.alter_topic_config(name, dict(set_configs), delete)
        log.info("topic %s configs changed: set %s, reset %s", name, dict(set_configs),
                 list(delete))


# --- producer ids --------------------------------------------------------------------------------


def allocate_producer_id(ctx: BrokerContext) -> int:
    """A new producer id. When the next block of ids cannot be reserved on disk, Kafka's answer
    for a block not yet available: COORDINATOR_LOAD_IN_PROGRESS, which clients retry."""
    try:
        with _storing(ctx):
            return ctx.producer_ids.allocate()
    except KafkaStorageError as exc:
        raise KafkaError(str(exc), ErrorCode.COORDINATOR_LOAD_IN_PROGRESS) from exc


# --- client quotas -------------------------------------------------------------------------------


def load_client_quotas(ctx: BrokerContext) -> None:
    """The client quotas kept in the data directory, if any were ever set."""
    with contextlib.suppress(FileNotFoundError):
        read_metadata(ctx.log.meta_dir / QUOTAS_FILE, ctx.quotas.load_json)


def alter_client_quotas(ctx: BrokerContext, entity: Entity, changes: Ops,
                        validate_only: bool = False) -> None:
    """AlterClientQuotas for one client-id entity (None: the default): values set or removed
    (None), all or nothing, kept across restarts before this returns."""
    authorize(ctx, AclOperation.ALTER_CONFIGS, ResourceType.CLUSTER, CLUSTER_NAME)
    ctx.quotas.check(changes)
    if validate_only:
        return
    before = ctx.quotas.to_json()
    ctx.quotas.alter(entity, changes)
    try:
        with _storing(ctx):
            write_atomically(ctx.log.meta_dir / QUOTAS_FILE, ctx.quotas.to_json())
    except KafkaStorageError:
        ctx.quotas.load_json(before)
        raise
    log.info("client quotas for %s: %s", "the default client-id" if entity is None
             else f"client-id {entity!r}", dict(changes))


# --- SCRAM credentials ---------------------------------------------------------------------------


def alter_scram_credentials(ctx: BrokerContext,
                            upserts: Collection[tuple[str, ScramMechanism, ScramCredential]],
                            deletions: Collection[tuple[str, ScramMechanism]]) -> None:
    """Set and remove users' SCRAM credentials, kept across restarts before this returns."""
    authorize(ctx, AclOperation.ALTER, ResourceType.CLUSTER, CLUSTER_NAME)
    if not upserts and not deletions:
        return
    with _storing(ctx):
        ctx.credentials.alter(upserts, deletions)
    log.info("SCRAM credentials: set %s; removed %s",
             sorted(f"{user} ({m.name}, {c.iterations} iterations)" for user, m, c in upserts)
             or "none", sorted(f"{user} ({m.name})" for user, m in deletions) or "none")


# --- ACLs ---------------------------------------------------------------------------------------


def change_acls(ctx: BrokerContext, add: Collection[AclBinding] = (),
                remove: Collection[AclBinding] = ()) -> None:
    """Create and delete ACLs, kept across restarts before this returns."""
    if ctx.authorizer is None:
        raise KafkaError("No Authorizer is configured (authorizer_class_name)",
                         ErrorCode.SECURITY_DISABLED)
    if not add and not remove:
        return
    with _storing(ctx):
        ctx.authorizer.change(add, remove)
    log.info("ACLs: added %s; removed %s", [a.to_json() for a in add] or "none",
             [a.to_json() for a in remove] or "none")


# --- transactions --------------------------------------------------------------------------------
# The coordinator (`ctx.transactions.coordinator`) decides; these write what it decided: each
# change to the transaction log before it takes effect or is answered, then the COMMIT/ABORT
# markers to every partition of the transaction (Kafka's TransactionMarkerChannelManager, here
# a direct append), then the end of the transaction. A write the disk refuses leaves the
# transaction as the log last had it and is answered NOT_COORDINATOR (Kafka's answer when its
# transaction log refuses an append): clients look up the coordinator and retry, and a
# transaction whose markers were refused is finished by the next periodic check.

COORDINATOR_EPOCH = 0  # one node that is always the coordinator: its epoch never changes
_P = ParamSpec("_P")
_T = TypeVar("_T")
_UNFINISHED: set[asyncio.Task[Any]] = set()  # what `_to_the_end` runs (the loop keeps weak refs)


def _to_the_end(op: Callable[_P, Coroutine[Any, Any, _T]]
                ) -> Callable[_P, Coroutine[Any, Any, _T]]:
    """Run a transaction change to its end even when the request that asked for it is
    cancelled (its client hung up while it waited for an fsync): half done, it would leave
    the transactional id pending forever. Kafka's coordinator goes on without the client too."""
    @functools.wraps(op)
    async def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        task = asyncio.ensure_future(op(*args, **kwargs))
        _UNFINISHED.add(task)
        task.add_done_callback(_UNFINISHED.discard)
        return await asyncio.shield(task)

    return run


def verify_transactional(ctx: BrokerContext, batch: Batch, tp: TopicPartition) -> None:
    """A transactional batch is appended only to a partition of its producer's ongoing
    transaction, under the transaction's epoch (Kafka's KIP-890 verification). One without a
    producer id is the log's to refuse (INVALID_RECORD)."""
    header = read_header(batch)
    if header.producer_id < 0:
        return
    error = ctx.transactions.coordinator.verify_produce(header.producer_id,
                                                        header.producer_epoch, tp)
    if error is not ErrorCode.NONE:
        why = "a newer epoch fenced it" if error is ErrorCode.INVALID_PRODUCER_EPOCH \
            else "the partition is not in its ongoing transaction"
        raise KafkaError(f"transactional batch of producer {header.producer_id} epoch "
                         f"{header.producer_epoch} to {tp[0]}-{tp[1]}: {why}", error)


async def write_transit(ctx: BrokerContext, transit: Transit) -> ErrorCode:
    """Store one change of a transactional id (durably, as the flush policy promises), then
    make it current. Prepare* stays pending: its markers come next."""
    service = ctx.transactions
    try:
        with _storing(ctx):
            service.log.write(transit)
        await durable(ctx, [service.log])
    except (KafkaStorageError, OSError) as exc:
        service.coordinator.abandon(transit.transactional_id)
        log.warning("transaction %s: its change to %s was not stored: %s",
                    transit.transactional_id, transit.state, str(exc))
        return ErrorCode.NOT_COORDINATOR
    service.coordinator.complete(transit, keep_pending=transit.state.preparing)
    return ErrorCode.NONE


async def transaction_work_done() -> None:
    """On shutdown, before the log closes: every transaction change `_to_the_end` runs is over."""
    if _UNFINISHED:
        await asyncio.wait(list(_UNFINISHED))


@_to_the_end
async def change_transaction(ctx: BrokerContext, decided: Transit | ErrorCode) -> ErrorCode:
    """The answer to a request the coordinator decided: its error, or its change stored."""
    if isinstance(decided, ErrorCode):
        return decided
    return await write_transit(ctx, decided)


def _write_markers(ctx: BrokerContext, transit: Transit) -> list[Partition]:
    """A COMMIT or ABORT marker on every partition of the transaction (a deleted topic's are
    skipped); the partitions written to."""
    written = []
    for topic, index in sorted(transit.partitions):
        try:
            partition = ctx.log.partition(topic, index)
        except UnknownTopicOrPartitionError:
            continue
        try:
            with _storing(ctx):
                partition.write_marker(transit.producer_id, transit.producer_epoch,
                                       transit.commit, COORDINATOR_EPOCH)
        except InvalidProducerEpochError as exc:  # the log knows a newer epoch: not ours to end
            log.error("transaction %s: no marker on %s-%d: %s", transit.transactional_id, topic,
                      index, str(exc))
            continue
        ctx.appends.notify(topic, index)  # read_committed fetches may move on now
        written.append(partition)
    return written


async def finish_transaction(ctx: BrokerContext, transit: Transit) -> ErrorCode:
    """After Prepare* is stored: the markers, then (on commit) the transaction's offsets made
    visible, then Complete* stored. If the disk refuses a step, the transaction stays Prepare*
    (never half-visible after a restart: Prepare* is finished on start) and is retried."""
    service = ctx.transactions
    try:
        flushed: set[Flushable] = set(_write_markers(ctx, transit))
        if transit.commit:
            for group, offsets in transit.pending_offsets().items():
                with _storing(ctx):
                    ctx.log.offsets.commit(group, offsets)
                flushed.add(ctx.log.offsets)
        await durable(ctx, flushed)
    except (KafkaStorageError, OSError) as exc:
        service.coordinator.abandon(transit.transactional_id)
        log.warning("transaction %s: writing its %s markers failed, will retry: %s",
                    transit.transactional_id, "COMMIT" if transit.commit else "ABORT", str(exc))
        return ErrorCode.NOT_COORDINATOR
    done = service.coordinator.prepare_complete(transit.transactional_id, service.clock())
    return await write_transit(ctx, done)


@_to_the_end
async def end_transaction(ctx: BrokerContext, decided: Transit | ErrorCode) -> ErrorCode:
    """EndTxn (or an abort the coordinator starts): Prepare* stored, markers, Complete*."""
    error = await change_transaction(ctx, decided)
    if error is not ErrorCode.NONE or isinstance(decided, ErrorCode):
        return error
    return await finish_transaction(ctx, decided)


@_to_the_end
async def init_transactional_producer(ctx: BrokerContext, transactional_id: str,
                                      timeout_ms: int, expected: tuple[int, int] | None
                                      ) -> tuple[ErrorCode, int, int]:
    """InitProducerId with a transactional id: (error, producer id, epoch). An ongoing
    transaction of the previous epoch is aborted first and CONCURRENT_TRANSACTIONS answered
    (the client retries and gets the epoch after it)."""
    if code := refusal(ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, transactional_id):
        return code, -1, -1
    coordinator = ctx.transactions.coordinator
    try:
        result = coordinator.init_producer_id(transactional_id, timeout_ms, expected,
                                              ctx.transactions.clock(),
                                              lambda: allocate_producer_id(ctx))
    except KafkaError as exc:
        return ErrorCode(exc.code), -1, -1
    if result.transit is None:
        current = coordinator.get(transactional_id)
        if result.error is not ErrorCode.NONE or current is None:
            return result.error, -1, -1
        return ErrorCode.NONE, current.producer_id, current.producer_epoch
    if result.fence:
        error = await end_transaction(ctx, result.transit)
        return error or ErrorCode.CONCURRENT_TRANSACTIONS, -1, -1
    error = await write_transit(ctx, result.transit)
    if error is not ErrorCode.NONE:
        return error, -1, -1
    return ErrorCode.NONE, result.transit.producer_id, result.transit.producer_epoch


async def commit_transactional_offsets(ctx: BrokerContext, txn: TxnCheck,
                                       check: OffsetCommitCheck,
                                       offsets: Mapping[TopicPartition, OffsetAndMetadata]
                                       ) -> dict[TopicPartition, ErrorCode]:
    """TxnOffsetCommit: the group coordinator checks the member (as for OffsetCommit), each
    partition is checked, then the valid ones join the transaction's pending offsets."""
    group_error = refusal(ctx, AclOperation.READ, ResourceType.GROUP, check.group_id)
    if not group_error and (check.generation_id >= 0 or check.member_id):
        group_error = await ctx.groups.call(ctx.groups.coordinator.validate_offset_commit,
                                            check, ErrorCode.NOT_COORDINATOR)
    errors = _offsets_errors(ctx, group_error, offsets)
    now = ctx.transactions.clock()
    accepted = [(tp, offset if offset.commit_timestamp else replace(offset, commit_timestamp=now))
                for tp, offset in offsets.items() if not errors[tp]]
    if accepted:
        error = await change_transaction(ctx, ctx.transactions.coordinator.commit_offsets(
            txn, check.group_id, accepted, now))
        if error is not ErrorCode.NONE:
            return dict.fromkeys(offsets, error)
    return errors


async def abort_timed_out_transactions(ctx: BrokerContext) -> None:
    """The periodic check: transactions past their timeout aborted (their producer fenced),
    and Prepare* transactions whose markers were refused, or left by a restart, finished."""
    coordinator = ctx.transactions.coordinator
    for transit in coordinator.timed_out(ctx.transactions.clock()):
        log.info("transaction %s (producer %d) timed out after %d ms: aborting it",
                 transit.transactional_id, transit.producer_id, transit.timeout_ms)
        await end_transaction(ctx, transit)
    for transit in coordinator.unfinished():
        await finish_transaction(ctx, transit)


async def expire_transactional_ids(ctx: BrokerContext) -> None:
    """Transactional ids idle for transactional.id.expiration.ms are forgotten."""
    for transit in ctx.transactions.coordinator.expired(ctx.transactions.clock()):
        if await write_transit(ctx, transit) is ErrorCode.NONE:
            log.info("transactional id %s expired", transit.transactional_id)
