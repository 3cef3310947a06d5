"""Produce (0): append each partition's record batch to the log, never re-encoded.

The log checks the batch (framing, CRC, and its header against its records, as Kafka's
LogValidator) and assigns offsets by patching bytes 0-7. Appends happen before the handler's
first `await`, so pipelined requests on one connection are appended in the order they were sent
(idempotent producers rely on that). acks=all then waits for the flush policy: under `always`,
one group-committed fsync per partition. An acks=1 batch may be held and written with the others
of its read (AppendNotifier.hold): should that write fail, its answer is made again, saying so,
before it leaves.

Versions 3-12 are served (13 names topics by id: not yet). v12 is v11 for a client that does not
use Kafka's transaction protocol v2 (KIP-890 part 2), which we do not advertise: such a client
still adds its partitions with AddPartitionsToTxn before producing to them.

mypyc compiles this module, the service layer and the log (pyproject's [tool.minikafka.build]):
a small Produce is mostly their glue.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from kafka.protocol.api_key import ApiKey

from ...errors import ErrorCode, KafkaError
from ...log import Partition
from ...protocol.codec import RequestHeader, decode_request
from ...protocol.produce import (
    MAX_VERSION,
    MIN_DECODED_VERSION,
    PartitionProduceData,
    PartitionResponse,
    decode_produce_request,
    encode_produce_response,
)
from .. import ops
from ..acls import AclOperation, ResourceType
from ..context import Api, BrokerContext, CloseConnection, refusal
from ..quotas import PRODUCER_BYTE_RATE

log = logging.getLogger("minikafka.broker")

MIN_SERVED_VERSION = 3  # v0-2 carry old message formats: answered UNSUPPORTED_VERSION (Kafka 4)
# Rejections worth a warning: the client sent something broken, not something merely unknown.
_WARN = {ErrorCode.CORRUPT_MESSAGE, ErrorCode.INVALID_RECORD, ErrorCode.INVALID_TOPIC_EXCEPTION,
         ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.UNSUPPORTED_COMPRESSION_TYPE}


def _append(ctx: BrokerContext, topic: str, data: PartitionProduceData, acks: int,
            appended: set[Partition] | None, held: _Answer | None) -> PartitionResponse:
    """The partition's answer; `appended` collects the partition (acks=all), `held`: the
    request's answer, if its batch may be held."""
    index = data.index
    response = PartitionResponse(index)
    try:
        partition, info = ops.append(ctx, topic, index, data.records, acks, None if held is None
                                     else partial(_unwritten, held, topic, response))
    except KafkaError as exc:
        _rejected(topic, response, exc)
        return response
    if appended is not None:
        appended.add(partition)
    response.base_offset, response.log_append_time_ms, response.log_start_offset = (
        info.base_offset, info.log_append_time, info.log_start_offset)
    return response


class _Answer:
    """A request's answer until it is encoded; one whose batches may be held (ops.append's
    `unwritten`) is made again if their write fails, before it leaves."""

    __slots__ = ("ctx", "header", "pieces", "results", "throttle")

    def __init__(self, ctx: BrokerContext, header: RequestHeader, throttle: int) -> None:
        self.ctx, self.header, self.throttle = ctx, header, throttle
        self.results: list[tuple[str, list[PartitionResponse]]] = []
        self.pieces: list[bytes] = []


def _unwritten(answer: _Answer, topic: str, response: PartitionResponse, exc: KafkaError
               ) -> None:
    """The held batch's write failed: its partition's answer says so."""
    _rejected(topic, response, exc)
    answer.ctx.metrics.error(ApiKey.Produce.name, exc.code)
    if answer.pieces:
        answer.pieces[0] = encode_produce_response(answer.header, answer.results, answer.throttle)


def _rejected(topic: str, response: PartitionResponse, exc: KafkaError) -> None:
    """The partition's answer is the error (and no offsets)."""
    level = logging.WARNING if exc.code in _WARN else logging.DEBUG
    # The message, not the exception: a kept log record must not pin its traceback's frames
    # (and through them the partition's open files).
    log.log(level, "produce to %s-%d rejected: %s", topic, response.index, str(exc))
    response.error_code, response.error_message = exc.code, str(exc)
    response.base_offset = response.log_append_time_ms = response.log_start_offset = -1


def _refusal(ctx: BrokerContext, version: int, request: Any
             ) -> tuple[int, str] | None:
    """An error for every partition of the request, or None."""
    acks = request.acks
    if version < MIN_SERVED_VERSION:
        return ErrorCode.UNSUPPORTED_VERSION, "produce v0-2 are not supported"
    if acks not in (0, 1, -1):
        return ErrorCode.INVALID_REQUIRED_ACKS, f"acks must be 0, 1 or -1, not {acks}"
    if request.transactional_id is not None and (code := refusal(
            ctx, AclOperation.WRITE, ResourceType.TRANSACTIONAL_ID, request.transactional_id)):
        return code, f"not authorized to WRITE transactional id {request.transactional_id!r}"
    return None


def decode(header: RequestHeader, frame: bytes, pos: int) -> Any:
    """By hand from v3 on; v0-2, only ever refused, through the schema classes."""
    if header.api_version < MIN_DECODED_VERSION:
        return decode_request(header, frame, pos)
    return decode_produce_request(header, frame, pos)


def _append_all(ctx: BrokerContext, header: RequestHeader, request: Any,
                appended: set[Partition] | None) -> _Answer | None:
    """Append every partition's batch (`appended` collects their partitions, for acks=all), all
    before the handler could wait, so in the order requests were sent; the answer to encode, or
    None under acks=0. `request` is a ProduceRequest, or for v0-2 (only refused) kafka-python's:
    untyped, as this module is compiled (mypyc checks the types of arguments)."""
    acks = request.acks
    throttle = ctx.quotas.charge(header.client_id, PRODUCER_BYTE_RATE, sum(
        len(pd.records or b"") for topic in request.topic_data for pd in topic.partition_data
    )) if ctx.quotas.active else 0
    refused = _refusal(ctx, header.api_version, request)
    answer = _Answer(ctx, header, throttle)
    held = answer if acks == 1 and ctx.appends.held is not None else None
    results = answer.results
    for topic in request.topic_data:
        name = topic.name
        results.append((name, [PartitionResponse(pd.index, refused[0], error_message=refused[1])
                               if refused else _append(ctx, name, pd, acks, appended, held)
                               for pd in topic.partition_data]))
    failed = [(name, r) for name, parts in results for r in parts if r.error_code]
    for _name, r in failed:
        ctx.metrics.error(ApiKey.Produce.name, r.error_code)
    if acks == 0:
        # No response is expected; Kafka closes the connection so the producer notices errors.
        if failed:
            raise CloseConnection("acks=0 produce failed for "
                                  + ", ".join(f"{name}-{r.index}" for name, r in failed))
        return None
    return answer


def _encoded(answer: _Answer | None) -> Any:
    if answer is None:
        return None
    answer.pieces.append(encode_produce_response(answer.header, answer.results, answer.throttle))
    return answer.pieces  # where `_unwritten` can make it again


async def handle_produce(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    appended: set[Partition] | None = set() if request.acks == -1 else None
    answer = _append_all(ctx, header, request, appended)
    if answer is not None and appended is not None:
        await ops.durable(ctx, appended)
    return _encoded(answer)


def produce_now(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    """handle_produce for acks 0 and 1, which wait for nothing (Api.handle_now)."""
    return _encoded(_append_all(ctx, header, request, None))


def _acks_at_most_one(_ctx: BrokerContext, _header: RequestHeader, request: Any) -> bool:
    """Only acks=all waits (for the flush policy)."""
    return bool(request.acks != -1)


APIS = (Api(ApiKey.Produce, 0, MAX_VERSION, handle_produce, decode,
            answers_now=_acks_at_most_one, handle_now=produce_now),)
