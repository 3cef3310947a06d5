"""Producer ids and transactions: InitProducerId (22), AddPartitionsToTxn (24), AddOffsetsToTxn
(25), EndTxn (26), TxnOffsetCommit (28), DescribeTransactions (65), ListTransactions (66).

The protocol is `txn/coordinator.py`, a pure state machine; `ops` stores what it decides
and writes the markers. We are the only node, so FindCoordinator (key type 1, in `groups.py`)
names us for every transactional id.

Without a transactional id, InitProducerId gives a fresh producer id at epoch 0 (idempotence),
as Kafka does. PRODUCER_FENCED (KIP-588) is answered as INVALID_PRODUCER_EPOCH to request
versions that predate it (InitProducerId < 4, AddPartitionsToTxn/AddOffsetsToTxn/EndTxn < 2,
TxnOffsetCommit < 3), as Kafka's KafkaApis does.

Left out: AddPartitionsToTxn v4+ (the broker-to-broker batched form of KIP-890; clients send
v0-3, and our produce verification runs in process), and transactions V2 (KIP-890 part 2:
EndTxn v5, TxnOffsetCommit v5, InitProducerId v6 with two-phase commit, KIP-939); the versions
advertised are those clients use without them.
"""

from __future__ import annotations

import re
from typing import Any

from kafka.protocol.api_key import ApiKey

from ...errors import ErrorCode, KafkaError
from ...log import OffsetAndMetadata
from ...log.offsets import TopicPartition
from ...protocol.codec import RequestHeader, response_class
from ...txn.coordinator import TxnCheck, TxnState
from .. import ops
from ..acls import CLUSTER_NAME, AclOperation, ResourceType
from ..context import Api, BrokerContext, authorized, authorized_any, refusal
from ..groups import OffsetCommitCheck

# The first version of each API that knows PRODUCER_FENCED; older ones get INVALID_PRODUCER_EPOCH.
_FENCED_FROM = {ApiKey.InitProducerId: 4, ApiKey.AddPartitionsToTxn: 2,
                ApiKey.AddOffsetsToTxn: 2, ApiKey.EndTxn: 2, ApiKey.TxnOffsetCommit: 3}


WRITE, DESCRIBE = AclOperation.WRITE, AclOperation.DESCRIBE
TXN_ID = ResourceType.TRANSACTIONAL_ID


def _for_version(error: ErrorCode, header: RequestHeader) -> ErrorCode:
    if error is ErrorCode.PRODUCER_FENCED and header.api_version < _FENCED_FROM[
            ApiKey(header.api_key)]:
        return ErrorCode.INVALID_PRODUCER_EPOCH
    return error


# --- InitProducerId -------------------------------------------------------------------------------


async def handle_init_producer_id(ctx: BrokerContext, header: RequestHeader, request: Any
                                  ) -> Any:
    cls = response_class(ApiKey.InitProducerId, header.api_version)
    if request.transactional_id is None:
        if not (authorized(ctx, AclOperation.IDEMPOTENT_WRITE, ResourceType.CLUSTER,
                           CLUSTER_NAME) or authorized_any(ctx, WRITE, ResourceType.TOPIC)):
            return cls(throttle_time_ms=0, error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
                       producer_id=-1, producer_epoch=-1)
        try:
            producer_id = ops.allocate_producer_id(ctx)
        except KafkaError as exc:
            return cls(throttle_time_ms=0, error_code=exc.code, producer_id=-1,
                       producer_epoch=-1)
        return cls(throttle_time_ms=0, error_code=0, producer_id=producer_id, producer_epoch=0)
    held = getattr(request, "producer_id", -1), getattr(request, "producer_epoch", -1)
    error, producer_id, epoch = await ops.init_transactional_producer(
        ctx, request.transactional_id, request.transaction_timeout_ms,
        held if held[0] >= 0 else None)
    return cls(throttle_time_ms=0, error_code=_for_version(error, header),
               producer_id=producer_id, producer_epoch=epoch)


# --- AddPartitionsToTxn, AddOffsetsToTxn, EndTxn --------------------------------------------------


async def handle_add_partitions(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    """v0-3: one transaction's partitions. An unknown partition fails the whole request, the
    others answered OPERATION_NOT_ATTEMPTED, as Kafka does."""
    cls = response_class(ApiKey.AddPartitionsToTxn, header.api_version)
    wanted = [(t.name, p) for t in request.v3_and_below_topics for p in t.partitions]
    refused = refusal(ctx, WRITE, TXN_ID, request.v3_and_below_transactional_id)
    failed = {tp: error for tp in wanted if (
        error := refusal(ctx, WRITE, ResourceType.TOPIC, tp[0]) or ops.partition_error(ctx, *tp))}
    if refused:
        errors = dict.fromkeys(wanted, refused)
    elif failed:
        errors = {tp: failed.get(tp, ErrorCode.OPERATION_NOT_ATTEMPTED) for tp in wanted}
    else:
        check = TxnCheck(request.v3_and_below_transactional_id,
                         request.v3_and_below_producer_id, request.v3_and_below_producer_epoch)
        error = await ops.change_transaction(ctx, ctx.transactions.coordinator.add_partitions(
            check, wanted, ctx.transactions.clock()))
        errors = dict.fromkeys(wanted, _for_version(error, header))
    topic_cls = cls.AddPartitionsToTxnTopicResult
    by_topic: dict[str, list[int]] = {}
    for topic, partition in wanted:
        by_topic.setdefault(topic, []).append(partition)
    return cls(throttle_time_ms=0, results_by_topic_v3_and_below=[
        topic_cls(name=topic, results_by_partition=[
            topic_cls.AddPartitionsToTxnPartitionResult(
                partition_index=p, partition_error_code=errors[(topic, p)]) for p in parts])
        for topic, parts in by_topic.items()])


def _check(request: Any) -> TxnCheck:
    return TxnCheck(request.transactional_id, request.producer_id, request.producer_epoch)


def _answer(header: RequestHeader, error: ErrorCode) -> Any:
    """The answer of an API whose only field is its error (AddOffsetsToTxn, EndTxn v0-4)."""
    cls = response_class(header.api_key, header.api_version)
    return cls(throttle_time_ms=0, error_code=_for_version(error, header))


async def handle_add_offsets(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    refused = refusal(ctx, WRITE, TXN_ID, request.transactional_id) or refusal(
        ctx, AclOperation.READ, ResourceType.GROUP, request.group_id)
    return _answer(header, refused or await ops.change_transaction(
        ctx, ctx.transactions.coordinator.add_offsets(_check(request), request.group_id,
                                                      ctx.transactions.clock())))


async def handle_end_txn(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    refused = refusal(ctx, WRITE, TXN_ID, request.transactional_id)
    return _answer(header, refused or await ops.end_transaction(
        ctx, ctx.transactions.coordinator.end_transaction(_check(request), request.committed,
                                                          ctx.transactions.clock())))


# --- TxnOffsetCommit ------------------------------------------------------------------------------


async def handle_txn_offset_commit(ctx: BrokerContext, header: RequestHeader, request: Any
                                   ) -> Any:
    version = header.api_version
    txn = _check(request)
    check = OffsetCommitCheck(request.group_id, request.member_id if version >= 3 else "",
                              request.generation_id if version >= 3 else -1,
                              request.group_instance_id if version >= 3 else None)
    offsets: dict[TopicPartition, OffsetAndMetadata] = {
        (t.name, p.partition_index): OffsetAndMetadata(
            p.committed_offset, p.committed_leader_epoch if version >= 2 else -1,
            p.committed_metadata or "")
        for t in request.topics for p in t.partitions}
    refused = refusal(ctx, WRITE, TXN_ID, request.transactional_id)
    errors = dict.fromkeys(offsets, refused) if refused else \
        await ops.commit_transactional_offsets(ctx, txn, check, offsets)
    cls = response_class(ApiKey.TxnOffsetCommit, version)
    topic_cls = cls.TxnOffsetCommitResponseTopic
    return cls(throttle_time_ms=0, topics=[
        topic_cls(name=t.name, partitions=[
            topic_cls.TxnOffsetCommitResponsePartition(
                partition_index=p.partition_index,
                error_code=_for_version(errors[(t.name, p.partition_index)], header))
            for p in t.partitions])
        for t in request.topics])


# --- admin: DescribeTransactions, ListTransactions ------------------------------------------------


async def handle_describe_transactions(ctx: BrokerContext, header: RequestHeader, request: Any
                                       ) -> Any:
    cls = response_class(ApiKey.DescribeTransactions, header.api_version)
    state_cls = cls.TransactionState
    answers = []
    for transactional_id in request.transactional_ids:
        refused = refusal(ctx, DESCRIBE, TXN_ID, transactional_id)
        found = ctx.transactions.coordinator.get(transactional_id) \
            if transactional_id and not refused else None
        if found is None:
            error = refused or (ErrorCode.INVALID_REQUEST if not transactional_id
                                else ErrorCode.TRANSACTIONAL_ID_NOT_FOUND)
            answers.append(state_cls(error_code=error, transactional_id=transactional_id,
                                     transaction_state="", transaction_timeout_ms=0,
                                     transaction_start_time_ms=-1, producer_id=-1,
                                     producer_epoch=-1, topics=[]))
            continue
        by_topic: dict[str, list[int]] = {}
        for topic, partition in sorted(found.partitions):
            by_topic.setdefault(topic, []).append(partition)
        answers.append(state_cls(
            error_code=0, transactional_id=transactional_id, transaction_state=found.state,
            transaction_timeout_ms=found.timeout_ms, transaction_start_time_ms=found.start_ms,
            producer_id=found.producer_id, producer_epoch=found.producer_epoch,
            topics=[state_cls.TopicData(topic=topic, partitions=parts)
                    for topic, parts in by_topic.items()]))
    return cls(throttle_time_ms=0, transaction_states=answers)


async def handle_list_transactions(ctx: BrokerContext, header: RequestHeader, request: Any
                                   ) -> Any:
    cls = response_class(ApiKey.ListTransactions, header.api_version)
    states = set(request.state_filters)
    known = {state.value for state in TxnState}
    try:
        listed = ctx.transactions.coordinator.list_transactions(
            states, set(request.producer_id_filters),
            request.duration_filter if header.api_version >= 1 else -1,
            request.transactional_id_pattern if header.api_version >= 2 else None,
            ctx.transactions.clock())
    except re.error:  # a pattern that does not compile
        return cls(throttle_time_ms=0, error_code=ErrorCode.INVALID_REQUEST,
                   unknown_state_filters=[], transaction_states=[])
    return cls(throttle_time_ms=0, error_code=0,
               unknown_state_filters=sorted(states - known),
               transaction_states=[cls.TransactionState(
                   transactional_id=t.transactional_id, producer_id=t.producer_id,
                   transaction_state=t.state) for t in listed
                   if authorized(ctx, DESCRIBE, TXN_ID, t.transactional_id)])


APIS = (
    Api(ApiKey.InitProducerId, 0, 5, handle_init_producer_id),
    Api(ApiKey.AddPartitionsToTxn, 0, 3, handle_add_partitions),
    Api(ApiKey.AddOffsetsToTxn, 0, 4, handle_add_offsets),
    Api(ApiKey.EndTxn, 0, 4, handle_end_txn),
    Api(ApiKey.TxnOffsetCommit, 0, 4, handle_txn_offset_commit),
    Api(ApiKey.DescribeTransactions, 0, 0, handle_describe_transactions),
    Api(ApiKey.ListTransactions, 0, 2, handle_list_transactions),
)
