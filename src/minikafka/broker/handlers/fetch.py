"""Fetch (1): file slices of whole batches, long-polled until min_bytes or max_wait_ms.

Nothing here reads record bytes: the log hands out `FileSlice`s and the connection sends them
with sendfile. Each partition's answer starts at the batch containing the fetch offset (clients
skip records before their offset). Only the first partition that returns data may exceed its
byte limits (KIP-74); later ones that would overflow return nothing this time.

Under read_committed (isolation level 1) a partition's answer stops at its last stable offset
and lists the aborted transactions overlapping what it returns, from the `.txnindex` files:
clients drop those transactions' records and skip the markers themselves.

From v7 a fetch may belong to an incremental fetch session (fetch_sessions.py): then the
partitions read are the session's, and those with nothing new are left out of the answer.

Most fetches of a consumer find nothing new, so that case is the cheap one: a long poll first
asks whether any partition has records or an error for it (`_idle`, no object per partition) and
builds its answer only once there is one or its time is up; a partition at its high watermark
is answered without reading its log. A long poll is no task: it is a `Poll` filed in
`ctx.appends` (appends.py), answering through the connection's reply when woken. A sessionless
consumer that finds nothing sends the same fetch again and again: its decoded request is shared
(protocol/fetch.py), and the empty answer to it encoded once while its partitions stay as they
are.
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from typing import Any

from kafka.protocol.api_key import ApiKey

from ...errors import ErrorCode, KafkaError
from ...log import LEADER_EPOCH, Partition
from ...protocol.codec import RequestHeader, response_header
from ...protocol.fetch import (
    MAX_VERSION,
    MIN_VERSION,
    TOPIC_IDS_FROM,
    FetchPartition,
    FetchRequest,
    PartitionData,
    RecordsSlice,
    TopicData,
    decode_fetch_request,
    encode_fetch_response,
)
from ...protocol.primitives import INT32
from ..acls import AclOperation, ResourceType
from ..appends import Poll
from ..bounds import hangup
from ..context import Api, BrokerContext, Reply, authorize, authorized
from ..fetch_sessions import FetchContext
from ..quotas import CONSUMER_BYTE_RATE

READ_COMMITTED = 1
READ, TOPIC = AclOperation.READ, ResourceType.TOPIC  # looked up once: an enum member costs
SESSIONS_FROM = 7  # older versions have no session fields: always sessionless


def _read_partition(ctx: BrokerContext, wanted: FetchPartition, budget: int, first: bool,
                    read_committed: bool, partition: Partition | None
                    ) -> tuple[PartitionData, int]:
    """The partition's answer and the record bytes it carries; `partition`: the log's, if the
    caller found it readable already."""
    index = wanted.partition
    if partition is None:
        if wanted.topic is None:
            return PartitionData(index, ErrorCode.UNKNOWN_TOPIC_ID), 0
        try:
            authorize(ctx, READ, TOPIC, wanted.topic)
            partition = ctx.log.partition(wanted.topic, index)
        except KafkaError as exc:
            return PartitionData(index, exc.code, records=b""), 0
    stable = partition.last_stable_offset
    data = PartitionData(
        index,
        high_watermark=partition.high_watermark,
        last_stable_offset=stable,
        log_start_offset=partition.log_start_offset,
        aborted_transactions=[] if read_committed else None,
        records=b"",
    )
    if wanted.current_leader_epoch > LEADER_EPOCH:
        data.error_code = ErrorCode.UNKNOWN_LEADER_EPOCH
        return data, 0
    limit = min(wanted.max_bytes, budget)
    try:
        found = partition.read(wanted.fetch_offset, max(limit, 1),
                               stable if read_committed else None)
    except KafkaError as exc:  # OFFSET_OUT_OF_RANGE
        data.error_code = exc.code
        return data, 0
    if found is None or not (first or found.length <= limit):
        return data, 0
    data.records = found
    if read_committed:
        data.aborted_transactions = partition.aborted_transactions(wanted.fetch_offset,
                                                                   found.next_offset)
    return data, found.length


def _idle(ctx: BrokerContext, wanted: list[FetchPartition], read_committed: bool,
          states: list[int] | None = None) -> bool:
    """Whether no partition has records past its fetch offset or an error to answer with: then
    a long poll waits on, and its answer is not built (a consumer's fetches mostly find nothing
    new, and this costs no object per partition). `states` gets each partition's last stable
    and log start offsets, what an empty answer tells besides the high watermarks."""
    partition_of = ctx.log.partition
    checked = None  # the last topic found readable: requests list a topic's partitions together
    for p in wanted:
        topic = p.topic
        if topic is None or p.current_leader_epoch > LEADER_EPOCH:
            return False
        if topic != checked:
            if not authorized(ctx, READ, TOPIC, topic):
                return False
            checked = topic
        try:
            partition = partition_of(topic, p.partition)
        except KafkaError:
            return False
        offset, end = p.fetch_offset, partition.high_watermark
        if offset != end and (not read_committed or offset > end
                              or offset < partition.log_start_offset
                              or offset < partition.last_stable_offset):
            return False
        if states is not None:
            states += (partition.last_stable_offset, partition.log_start_offset)
    return True


def _name_topics(ctx: BrokerContext, version: int, wanted: list[FetchPartition]) -> None:
    """From v13 topics are asked for by id: each partition's topic name (None: unknown)."""
    if version < TOPIC_IDS_FROM:
        return
    names: dict[uuid.UUID, str | None] = {}
    for p in wanted:
        if (topic_id := p.topic_id) is not None:  # always, from v13
            if topic_id not in names:
                names[topic_id] = ctx.log.topic_by_id(topic_id)
            p.topic = names[topic_id]


def _context(ctx: BrokerContext, version: int, request: FetchRequest) -> FetchContext:
    _name_topics(ctx, version, request.partitions)
    if version < SESSIONS_FROM:
        return FetchContext(request.partitions)
    return ctx.fetch_sessions.new_context(request.session_id, request.session_epoch,
                                          request.partitions, request.forgotten,
                                          topic_ids=version >= TOPIC_IDS_FROM)


def _read_all(ctx: BrokerContext, request: FetchRequest, context: FetchContext
              ) -> tuple[list[PartitionData | None], int, bool]:
    """One pass over the partitions to read: (their answers, record bytes, any error). A
    partition with nothing new is answered without reading its log, and in an incremental
    fetch one whose high watermark and log start offset are as last told is not answered at
    all (None)."""
    budget = request.max_bytes
    total = 0
    failed = False
    read_committed = request.isolation_level == READ_COMMITTED
    skip_unchanged = context.incremental
    partition_of = ctx.log.partition
    checked = None  # the last topic found readable
    answers: list[PartitionData | None] = []
    append = answers.append
    for wanted in context.partitions:
        topic = wanted.topic
        partition = None
        if topic is not None and wanted.current_leader_epoch <= LEADER_EPOCH and (
                topic == checked or authorized(ctx, READ, TOPIC, topic)):
            checked = topic
            try:
                partition = partition_of(topic, wanted.partition)
            except KafkaError:
                pass  # answered with its error below
            else:
                end = partition.high_watermark
                if wanted.fetch_offset == end:  # the common case: nothing new
                    start = partition.log_start_offset
                    if skip_unchanged and end == wanted.high_watermark \
                            and start == wanted.log_start_offset:
                        append(None)
                    else:
                        append(PartitionData(wanted.partition, 0, end,
                                             partition.last_stable_offset, start,
                                             [] if read_committed else None, b""))
                    continue
        data, size = _read_partition(ctx, wanted, budget, total == 0, read_committed,
                                     partition)
        total += size
        budget -= size
        failed = failed or data.error_code != 0
        append(data)
    return answers, total, failed


def _by_topic(answered: list[tuple[FetchPartition, PartitionData]]) -> list[TopicData]:
    """Consecutive partitions of one topic as one topic entry, as the request grouped them."""
    topics: list[TopicData] = []
    name: str | None = None
    topic_id: uuid.UUID | None = None
    partitions: list[PartitionData] = []
    for wanted, data in answered:
        if not topics or wanted.topic != name or wanted.topic_id != topic_id:
            name, topic_id, partitions = wanted.topic, wanted.topic_id, []
            topics.append(TopicData(name or "", partitions, topic_id))
        partitions.append(data)
    return topics


def _answer(ctx: BrokerContext, header: RequestHeader, context: FetchContext,
            data: list[PartitionData | None], total: int) -> list[bytes | RecordsSlice]:
    if ctx.quotas.active:
        throttle = ctx.quotas.charge(header.client_id, CONSUMER_BYTE_RATE, total)
        if throttle:  # as Kafka: an empty answer, and its bytes not charged
            ctx.quotas.unrecord(header.client_id or "", CONSUMER_BYTE_RATE, total)
            return encode_fetch_response(header, [], throttle_time_ms=throttle)
    answered = context.answer(data)
    ctx.metrics.fetched(answered)
    return encode_fetch_response(header, _by_topic(answered), session_id=context.session_id)


def _watched(wanted: list[FetchPartition]) -> dict[str, set[int]]:
    """The partitions whose appends wake the long poll, by topic."""
    watched: dict[str, set[int]] = {}
    for p in wanted:
        if p.topic is not None:
            indexes = watched.get(p.topic)
            if indexes is None:
                indexes = watched[p.topic] = set()
            indexes.add(p.partition)
    return watched


class _Shared:
    """What is kept of a request that the decoder shares among the fetches with its body
    (decode_fetch_request): a consumer that finds nothing asks the same again and again."""

    __slots__ = ("body", "request", "size", "states", "watched")

    def __init__(self, request: FetchRequest, watched: dict[str, set[int]] | None) -> None:
        self.request = request  # kept, so that its id stays its own
        self.watched = watched  # the partitions it watches (to v12: named in it)
        self.states: list[int] | None = None  # those its empty answer tells of (_idle)
        self.body = b""  # that answer, after the response header
        self.size = b""  # its frame's size prefix


_SHARED: dict[int, _Shared] = {}
SHARED_MAX = 256  # bounded as the decoder's


def _shared(request: FetchRequest, version: int) -> _Shared:
    memo = _SHARED.get(id(request))
    if memo is None or memo.request is not request:
        if len(_SHARED) >= SHARED_MAX:
            _SHARED.clear()
        memo = _SHARED[id(request)] = _Shared(
            request, _watched(request.partitions) if version < TOPIC_IDS_FROM else None)
    return memo


def _empty(ctx: BrokerContext, header: RequestHeader, request: FetchRequest,
           context: FetchContext) -> list[bytes | RecordsSlice] | None:
    """The answer of a sessionless fetch whose partitions are all at their ends, encoded
    once for as long as their states stay the same; None for any other fetch (or one the
    decoder did not share)."""
    if not request.shared or request.isolation_level == READ_COMMITTED or ctx.quotas.active:
        return None
    states: list[int] = []
    if not _idle(ctx, context.partitions, False, states):
        return None
    head = response_header(header)
    memo = _shared(request, header.api_version)
    if memo.states != states:
        data, total, _failed = _read_all(ctx, request, context)
        answer = _answer(ctx, header, context, data, total)[0]
        assert isinstance(answer, bytes) and total == 0
        memo.states, memo.body = states, answer[4 + len(head):]
        memo.size = INT32.pack(len(head) + len(memo.body))  # (one version: one header size)
    return [b"".join((memo.size, head, memo.body))]


class _Poll(Poll):
    """A fetch waiting for min_bytes or max_wait_ms, in the context of its request."""

    __slots__ = ("context", "ctx", "deadline", "header", "read_committed", "reply", "request",
                 "variables")

    def __init__(self, ctx: BrokerContext, header: RequestHeader, request: FetchRequest,
                 context: FetchContext, reply: Reply) -> None:
        super().__init__({}, hangup.get())
        self.ctx, self.header, self.request, self.context = ctx, header, request, context
        self.read_committed = request.isolation_level == READ_COMMITTED
        self.deadline = ctx.loop.time() + max(request.max_wait_ms, 0) / 1000
        self.reply = reply
        self.variables: contextvars.Context | None = None  # the request's, once it waits

    def attempt(self, expired: bool) -> bool:
        """Answer if a partition has enough to return or an error, or the wait is over; else
        (at the first attempt) file the poll in ctx.appends. True if answered."""
        ctx, request = self.ctx, self.request
        waiting = not expired and request.min_bytes > 0 and not ctx.stopping \
            and (self.gone is None or not self.gone.done()) \
            and (self.deadline > ctx.loop.time() if self.tick  # (filed: it has waited)
                 else request.max_wait_ms > 0)
        if not waiting and (empty := _empty(ctx, self.header, request, self.context)):
            self.reply(empty)
            return True
        if not waiting or not _idle(ctx, self.context.partitions, self.read_committed):
            data, total, failed = _read_all(ctx, request, self.context)
            if not waiting or failed or total >= request.min_bytes:
                self.reply(_answer(ctx, self.header, self.context, data, total))
                return True
        if not self.tick:
            watched = _shared(request, self.header.api_version).watched if request.shared \
                else None
            self.watched = watched if watched is not None else _watched(self.context.partitions)
            self.variables = contextvars.copy_context()
            ctx.appends.park(self, self.deadline)
        return False

    def wake(self, expired: bool) -> bool:
        assert self.variables is not None
        try:
            return self.variables.run(self.attempt, expired)
        except Exception as exc:  # the connection closes, as for a failed handler
            self.reply(exc)
            return True


def poll_fetch(ctx: BrokerContext, header: RequestHeader, request: FetchRequest,
               reply: Reply) -> None:
    """Answer through `reply` at once, or file a long poll that will."""
    context = _context(ctx, header.api_version, request)
    if context.error_code:
        reply(encode_fetch_response(header, [], error_code=context.error_code))
    else:
        _Poll(ctx, header, request, context, reply).attempt(False)


async def handle_fetch(ctx: BrokerContext, header: RequestHeader, request: FetchRequest
                       ) -> list[bytes | RecordsSlice]:
    """poll_fetch for a handler's task (under client quotas, which time it)."""
    answered: asyncio.Future[list[bytes | RecordsSlice]] = ctx.loop.create_future()

    def reply(answer: Any) -> None:
        if answered.done():  # cancelled: the connection is gone
            return
        if isinstance(answer, BaseException):
            answered.set_exception(answer)
        else:
            answered.set_result(answer)

    poll_fetch(ctx, header, request, reply)
    return await answered


APIS = (Api(ApiKey.Fetch, MIN_VERSION, MAX_VERSION, handle_fetch, decode_fetch_request,
            poll=poll_fetch),)
