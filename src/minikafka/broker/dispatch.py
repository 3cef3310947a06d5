"""A connection's requests, from its bytes to its answers' queue: the per-request path.

`Dispatcher` cuts the frames out of what a connection (connection.py) receives, parses each
header, finds its Api and dispatches it: answered at once (Api.answers_now), as a long poll
(Api.poll, its reply an `Answering`), or by a handler's task that the connection runs. Answers
are queued in request order; those ready at the head of the queue while the connection's writer
task is idle are written at once, together (`write_ready`). It keeps the state those steps share
with the connection: the queue, the frame buffer, the request budget's charge, and whether
reading is paused. The rules it follows are told in connection.py's docstring.

Compiled (mypyc): every request passes here, and the connection itself cannot be compiled (it
subclasses asyncio's protocol, and a compiled class cannot subclass an interpreted one).
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any, Protocol

from kafka.protocol.api_key import ApiKey

from ..protocol.codec import (
    RequestHeader,
    encode_response,
    known_version,
    parse_header,
    unsupported_api_versions,
)
from ..protocol.framing import FrameBuffer, FramingError
from ..protocol.primitives import MalformedError
from .appends import AppendNotifier
from .context import Answer, Api, BrokerContext, CloseConnection, Poller
from .request_metrics import RequestMetrics
from .sasl import Session

Pieces = list[Any] | None  # bytes and record slices, or None when no answer is due
SMALL_SLICE = 16 * 1024  # record slices up to this size are read and sent with their answer


class Owner(Protocol):
    """What the dispatcher asks of its connection: the requests it does not answer itself."""

    def handle(self, api: Api, header: RequestHeader, request: Any, size: int
               ) -> Coroutine[Any, Any, Pieces]: ...

    def raw_token(self, frame: bytes) -> Coroutine[Any, Any, Pieces]: ...

    def violation(self, exc: CloseConnection) -> None: ...


class Answering:
    """A request's place in the answer queue while its answer is made without a task (a long
    poll), and the reply its handler calls once with that answer or the exception it failed
    with; also a request answered at once that failed. Read as a done future is: `result()`."""

    __slots__ = ("dispatcher", "done", "failure", "header", "pieces", "size", "started")

    def __init__(self, dispatcher: Dispatcher, header: RequestHeader, size: int) -> None:
        self.dispatcher = dispatcher
        self.header = header
        self.size = size  # the request's bytes, refunded to the budget when answered
        self.started = time.perf_counter()
        self.done = False  # answered, or cancelled
        self.pieces: Pieces = None
        self.failure: BaseException | None = None

    def __call__(self, answer: Any) -> None:
        d = self.dispatcher
        d.refund(self.size)
        failed = isinstance(answer, BaseException)
        d.metrics.answered(self.header, time.perf_counter() - self.started,
                           None if failed else answer)
        if self.done:  # cancelled: the connection is gone
            return
        self.done = True
        if failed:
            self.failure = answer
        else:
            self.pieces = encoded(self.header, answer)
        if d.answers and d.answers[0] is self and not d.flush_due:
            d.flush_due = True  # once for the answers of this pass
            d.appends.defer(d.flush)

    def fail(self, exc: BaseException) -> Answering:
        self.done, self.failure = True, exc
        return self

    def cancel(self) -> None:
        self.done = True

    def result(self) -> Pieces:
        if self.failure is not None:
            raise self.failure
        return self.pieces


# An answer in the queue: a handler's task, a long poll's or a failure's Answering, or the
# encoded pieces of one answered at once ([]: no answer is due).
Pending = asyncio.Task[Pieces] | Answering | list[Any]


def answered(pending: Pending | None) -> bool:
    """Answered at once, or by a long poll that did not fail (a handler's task is the
    writer's)."""
    return isinstance(pending, list) or (
        isinstance(pending, Answering) and pending.done and pending.failure is None)


def polling(pending: Pending | None) -> bool:
    """A long poll's answer not yet made, not a handler's task."""
    return isinstance(pending, Answering) and not pending.done


def ready(pending: Pending) -> bool:
    """Answered (or failed): the writer takes it without waiting."""
    if isinstance(pending, list):
        return True
    if isinstance(pending, Answering):
        return pending.done
    return pending.done()


def read_slice(fd: int, position: int, size: int) -> bytes:
    """`size` bytes of a segment file (a record slice, or a part of one)."""
    chunk = os.pread(fd, size, position)
    if len(chunk) < size:
        raise OSError(f"segment ends {size - len(chunk)} bytes before its slice")
    return chunk


def as_bytes(pieces: Pieces) -> list[bytes] | None:
    """An answer's pieces as bytes, small record slices read; None if it has a big slice."""
    if pieces is None:
        return []
    for piece in pieces:
        if not isinstance(piece, bytes):
            break
    else:
        return pieces
    if any(not isinstance(piece, bytes) and piece.length > SMALL_SLICE for piece in pieces):
        return None
    try:
        return [piece if isinstance(piece, bytes)
                else read_slice(piece.file.fileno(), piece.position, piece.length)
                for piece in pieces]
    except OSError:
        return None  # the writer fails as it would have


def run_now(coroutine: Coroutine[Any, Any, Answer]) -> Answer:
    """Run a coroutine that does not wait to its end, here and now."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a handler said to answer at once waited")


def encoded(header: RequestHeader, answer: Answer) -> Pieces:
    """A handler's answer as pieces to send: already encoded, a response to encode, or None."""
    if answer is None or isinstance(answer, list):
        return answer
    return [encode_response(header, answer)]


class Dispatcher:
    """One connection's requests (see the module's docstring); `context` is the connection's
    context variables, each request run in a copy."""

    def __init__(self, ctx: BrokerContext, owner: Owner, session: Session, sasl: bool,
                 context: contextvars.Context, loop: asyncio.AbstractEventLoop) -> None:
        self.ctx = ctx
        self.owner = owner
        self.session = session
        self.context = context
        self.loop = loop
        self.apis: dict[int, Api] = ctx.apis
        self.appends: AppendNotifier = ctx.appends
        self.metrics: RequestMetrics = ctx.metrics.requests
        self.transport: asyncio.Transport | None = None
        # SASL: one request at a time until authenticated, as Kafka's authenticator reads
        self.max_in_flight = 1 if sasl else ctx.config.max_in_flight
        self.frames = FrameBuffer(ctx.config.socket_request_max_bytes)
        if sasl:  # strangers may not make the broker hold big requests
            self.frames.limit(ctx.config.sasl_server_max_receive_size,
                              "sasl.server.max.receive.size")
        # Answers in request order; None (last) means no more requests will come.
        self.answers: deque[Pending | None] = deque()
        self.reading = True  # requests are still accepted
        self.read_paused = False  # max_in_flight reached, or the request budget spent
        # Under TLS, requests that arrive with the handshake's end wait for start_tls
        self.parsing = True
        self.charged = 0  # bytes read and charged to ctx.budget, until their answers are due
        self.released = False  # the charge went back to ctx.budget with the connection
        self.last_active = 0.0  # loop time of the last read or write
        self.muted = False  # a quota mutes the connection: nothing more is read for now
        self.gone = False  # lost, or closing for a protocol violation: send nothing more
        self.wake_writer: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None  # set while the transport is full
        self.flush_due = False  # flush is deferred to the end of a pass of long polls
        # Handler tasks not yet started: a request answered at once must not pass them (their
        # appends happen in their first step, and appends follow the order requests were sent).
        self.unstarted = 0

    # --- reading ----------------------------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        """Room in the frame buffer to receive into."""
        if not self.reading:  # bytes after shutdown or a violation are dropped unread
            self.frames.clear()
        return self.frames.get_buffer(sizehint)

    def received(self, nbytes: int) -> None:
        """`nbytes` arrived in the frame buffer: charge them, and dispatch what is whole."""
        self.frames.buffer_updated(nbytes)
        if self.reading:
            self.charged += nbytes
            self.ctx.budget.available -= nbytes
            self.last_active = self.loop.time()
            if self.parsing:
                self.parse()

    def parse(self) -> None:
        """Dispatch every whole frame received while fewer than max_in_flight are unanswered;
        answers ready at once leave together in one write when nothing is ahead of them. The
        batches of Produce requests answered at once are held meanwhile (from the first that
        more bytes follow), and written together before any answer leaves
        (AppendNotifier.hold)."""
        appends = self.appends
        appends.begin_read()
        try:
            self._parse_frames()
        finally:
            appends.end_read()

    def _parse_frames(self) -> None:
        frames, answers, appends = self.frames, self.answers, self.appends
        added = False
        try:
            while True:
                while len(answers) < self.max_in_flight and not self.muted:
                    frame = frames.next_frame()
                    if frame is None:
                        break
                    if frames.unread:  # more requests follow: their appends may share a write
                        appends.hold()
                    answers.append(self.dispatch(frame))
                    added = True
                else:  # stopped by max_in_flight: writing the ready answers makes room
                    if self.write_ready():
                        continue
                break
        except FramingError as bad:  # (each its own name: mypyc types one name once)
            self.owner.violation(CloseConnection(str(bad)))
            return
        except CloseConnection as exc:
            self.owner.violation(exc)
            return
        if added:
            self.write_ready()
            if answers and not polling(answers[0]):  # a long poll's reply writes or wakes
                self.wake()
        self.update_reading()

    def dispatch(self, frame: bytes) -> Pending:
        if self.session.raw_tokens:
            return self.loop.create_task(self.owner.raw_token(frame),
                                         context=self.context.copy())
        try:
            header, pos = parse_header(frame)
        except MalformedError as exc:
            raise CloseConnection(f"bad request header: {exc}") from None
        api = self.apis.get(header.api_key)
        if api is None:
            raise CloseConnection(f"unknown API key {header.api_key}")
        if self.session.sasl:  # (otherwise every request is admitted)
            self.session.admit(header.api_key)
        size = len(frame) + 4
        if not api.min_version <= header.api_version <= api.max_version:
            if header.api_key == ApiKey.ApiVersions:
                self.refund(size)
                return [unsupported_api_versions(header, self.ctx.served_versions)]
            raise CloseConnection(f"{ApiKey(header.api_key).name} v{header.api_version} is not "
                                  f"served (v{api.min_version}-v{api.max_version})")
        if not known_version(header.api_key, header.api_version):
            raise CloseConnection(f"no schema for API {header.api_key} v{header.api_version}")
        try:
            request = api.decode(header, frame, pos)
        except MalformedError as exc:
            raise CloseConnection(str(exc)) from None
        if not self.unstarted and not self.ctx.quotas.active:
            if api.answers_now is not None and api.answers_now(self.ctx, header, request):
                return self._handle_now(api, header, request, size)
            if api.poll is not None:
                return self._poll(api.poll, header, request, size)
        self.unstarted += 1
        return self.loop.create_task(self.owner.handle(api, header, request, size),
                                     context=self.context.copy())

    def _handle_now(self, api: Api, header: RequestHeader, request: Any, size: int) -> Pending:
        """The connection's handle without a task, for a request whose handler cannot wait
        (Api.answers_now): its coroutine is run to its end at once. A failure is kept for the
        writer, as a task's would be."""
        started = time.perf_counter()
        answer = None
        try:
            if api.handle_now is not None:
                answer = self.context.copy().run(api.handle_now, self.ctx, header, request)
            else:
                answer = self.context.copy().run(run_now, api.handle(self.ctx, header, request))
        except Exception as exc:
            return Answering(self, header, size).fail(exc)
        finally:
            self.refund(size)
            self.metrics.answered(header, time.perf_counter() - started, answer)
        return encoded(header, answer) or []

    def _poll(self, poll: Poller, header: RequestHeader, request: Any, size: int) -> Pending:
        """The connection's handle without a task, for a handler that mostly waits (Api.poll):
        its answer, if made at once, else its place in the queue that its reply fills."""
        reply = Answering(self, header, size)
        try:
            self.context.copy().run(poll, self.ctx, header, request, reply)
        except Exception as exc:
            reply(exc)
        if reply.done and reply.failure is None and (now := as_bytes(reply.pieces)) is not None:
            return now  # answered at once, as bytes: write_ready may write it
        return reply

    def refund(self, nbytes: int) -> None:
        if not self.released:
            self.charged -= nbytes
            self.ctx.budget.refund(nbytes)

    def update_reading(self) -> None:
        """Pause reading while max_in_flight requests are unanswered or the broker's request
        budget is spent (unless this connection may finish the frame it is in); resume after."""
        budget = self.ctx.budget
        pause = len(self.answers) >= self.max_in_flight or self.muted or (
            budget.available <= 0 and not budget.may_read(
                self, self.frames.unread > 0, self._budget_refilled))
        transport = self.transport
        if pause != self.read_paused and self.reading and transport is not None \
                and not transport.is_closing():
            self.read_paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _budget_refilled(self) -> None:
        if self.reading:
            self.update_reading()

    def end_requests(self) -> None:
        """No more requests will come: the writer ends after the answers queued."""
        if self.reading:
            self.reading = False
            self.answers.append(None)
            self.wake()

    # --- writing ----------------------------------------------------------------------------------

    def write_ready(self) -> bool:
        """Write the answers at the head of the queue that were answered at once or by a long
        poll, if all bytes (or small record slices), in one write, while the writer task is idle
        (nothing of ours is on its way out) and the transport takes more; True if any left the
        queue."""
        answers = self.answers
        waker = self.wake_writer
        if waker is None or waker.done() or self.drained is not None or self.gone \
                or self.transport is None or not answers or not answered(answers[0]):
            return False
        self.appends.write_held()  # what they acknowledge is written first
        pieces: list[bytes] = []
        count = len(answers)
        while answers:
            head = answers[0]
            if isinstance(head, list):
                now: list[bytes] | None = head
            elif isinstance(head, Answering) and head.done and head.failure is None:
                now = as_bytes(head.pieces)
            else:
                break
            if now is None:
                break  # a big record slice: the writer sends it
            pieces += now
            answers.popleft()
        if pieces:
            self.transport.write(b"".join(pieces))
        return len(answers) < count

    def flush(self) -> None:
        """After a pass of long polls answered (AppendNotifier.defer), the first of them at the
        head of the queue: write what is ready there now, without waking the writer, which
        sends what it must itself (big record slices, failures)."""
        self.flush_due = False
        if self.write_ready():
            self.last_active = self.loop.time()
            if self.read_paused and self.reading:
                self.parse()  # room again for requests waiting in the buffer
        if self.answers and not polling(self.answers[0]):
            self.wake()

    def wake(self) -> None:
        """Wake the writer task if it waits for an answer."""
        waker = self.wake_writer
        if waker is not None and not waker.done():
            waker.set_result(None)
