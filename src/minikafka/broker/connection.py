"""One client connection: framing, pipelining, and in-order responses.

A buffered protocol receives into one buffer and cuts size-prefixed frames out of it (one copy per
frame, none per read: protocol.framing's FrameBuffer), starting one handler task per request; a
writer task awaits those tasks in arrival order and writes each answer, so requests run
concurrently but answers leave in the order asked (the protocol's rule). At most `max_in_flight`
requests are unanswered; past that reading pauses and TCP pushes back on the client. Answers that
are ready together leave in one write; record slices go out with sendfile (small ones are read
and written with their answer). Requests whose handler cannot wait are answered without a task,
and long polls (Fetch) wait without one, filed in ctx.appends: the answers those make at the head
of the queue are written by the reader side, and the writer task sends only the rest. Anything
that breaks the protocol closes this connection only.

Bounds (bounds.py): bytes read are charged to the broker's request budget until their request is
answered, and reading pauses while it is spent; connections past max.connections(.per.ip) are
closed at once, and idle ones after connections.max.idle.ms. A client that hangs up (EOF or a
reset) ends its long waits at once, so its descriptor and memory go with it.

Client quotas (quotas.py), only when some are configured: a request's handler time is charged to
its client id's request_percentage, and a client over a quota is muted as Kafka mutes a throttled
channel (KIP-219): its answer leaves at once with throttle_time_ms set, and nothing more is read
from it until that time has passed; answers to versions older than KIP-219 are held that long
too, as Kafka held them. A throttled connection is then read one request at a time, as Kafka reads
every connection, so that requests pipelined behind a throttled one do not pass it.

Security (tls.py, sasl.py): on a TLS listener the handshake comes first (tls.start_tls: a failed
one is one log line naming the peer, and its alert reaches the client) and record slices are
read and written through the TLS transport, sendfile being of no use for encrypted bytes; on a
SASL listener requests are read one at a time and only those of authentication are served until
the client is authenticated, and a failed authentication is answered and closes the connection.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import ssl
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

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
from .bounds import hangup
from .context import (
    Answer,
    Api,
    BrokerContext,
    CloseConnection,
    Poller,
    client_host,
    listener,
    principal,
)
from .quotas import CLIENT_THROTTLES_FROM, REQUEST_PERCENTAGE, Timed, charged_throttle
from .sasl import AuthenticationFailed, Session, authenticate, session
from .tls import certificate_principal, start_tls

log = logging.getLogger("minikafka.broker")

Pieces = list[Any] | None  # bytes and record slices, or None when no answer is due
# An answer in the queue: a handler's task, or the encoded pieces of one answered at once ([]: no
# answer is due).
Pending = asyncio.Future[Pieces] | list[Any]
TLS_CHUNK = 1024 * 1024  # record bytes read and encrypted at a time under TLS
SMALL_SLICE = 16 * 1024  # record slices up to this size are read and sent with their answer


def _read(fd: int, position: int, size: int) -> bytes:
    """`size` bytes of a segment file (a record slice, or a part of one)."""
    chunk = os.pread(fd, size, position)
    if len(chunk) < size:
        raise OSError(f"segment ends {size - len(chunk)} bytes before its slice")
    return chunk


def _bytes(pieces: Pieces) -> list[bytes] | None:
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
                else _read(piece.file.fileno(), piece.position, piece.length)
                for piece in pieces]
    except OSError:
        return None  # the writer fails as it would have


def _answered(pending: Pending | None) -> bool:
    """Answered at once, or by a long poll that did not fail (a handler's task is the
    writer's)."""
    return isinstance(pending, list) or (
        isinstance(pending, asyncio.Future) and not isinstance(pending, asyncio.Task)
        and pending.done() and not pending.cancelled() and pending.exception() is None)


def _polling(pending: Pending | None) -> bool:
    """A long poll's answer not yet made (Connection._poll), not a handler's task."""
    return isinstance(pending, asyncio.Future) and not pending.done() \
        and not isinstance(pending, asyncio.Task)


def run_now(coroutine: Coroutine[Any, Any, Answer]) -> Answer:
    """Run a coroutine that does not wait to its end, here and now."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a handler said to answer at once waited")


def _encoded(header: RequestHeader, answer: Answer) -> Pieces:
    """A handler's answer as pieces to send: already encoded, a response to encode, or None."""
    if answer is None or isinstance(answer, list):
        return answer
    return [encode_response(header, answer)]


class Connection(asyncio.BufferedProtocol):
    """Created per accepted socket; `task` (the writer) lives as long as the connection and is
    handed to `on_start` so the broker can wait for it on shutdown."""

    def __init__(self, ctx: BrokerContext,
                 on_start: Callable[[asyncio.Task[None], Connection], None],
                 listener_name: str = "", tls: ssl.SSLContext | None = None,
                 sasl: bool = False) -> None:
        self.ctx = ctx
        self.listener = listener_name
        self._tls = tls
        # Under TLS, requests that arrive with the handshake's end wait for start_tls to hand
        # over the TLS transport (reading is paused and resumed on it)
        self._tls_ready = tls is None
        self.session = Session("", listener_name, sasl, on_authenticated=self._authenticated)
        self._on_start = on_start
        self.peer = ""
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        # SASL: one request at a time until authenticated, as Kafka's authenticator reads
        self._max_in_flight = 1 if sasl else ctx.config.max_in_flight
        self._frames = FrameBuffer(ctx.config.socket_request_max_bytes)
        if sasl:  # strangers may not make the broker hold big requests
            self._frames.limit(ctx.config.sasl_server_max_receive_size,
                               "sasl.server.max.receive.size")
        # Answers in request order; None (last) means no more requests will come.
        self._answers: deque[Pending | None] = deque()
        self._reading = True  # requests are still accepted
        self._read_paused = False  # max_in_flight reached, or the request budget spent
        self._charged = 0  # bytes read and charged to ctx.budget, until their answers are due
        self._released = False  # the charge went back to ctx.budget with the connection
        self._loop = asyncio.get_running_loop()
        self._ip: str | None = None  # counted in ctx.connections
        self._hangup: asyncio.Future[None] | None = None  # done when the client is gone
        self._last_active = 0.0  # loop time of the last read or write
        self._idle_timer: asyncio.TimerHandle | None = None
        self._unmute_timer: asyncio.TimerHandle | None = None  # set while a quota mutes us
        self._gone = False  # lost, or closing for a protocol violation: send nothing more
        self._wake_writer: asyncio.Future[None] | None = None
        self._flush_due = False  # _flush is deferred to the end of a pass of long polls
        self._drained: asyncio.Future[None] | None = None  # set while the transport is full
        self._context = contextvars.copy_context()  # with client_host; each handler a copy
        # Handler tasks not yet started: a request answered at once must not pass them (their
        # appends happen in their first step, and appends follow the order requests were sent).
        self._unstarted = 0

    # --- protocol callbacks -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.ctx.stopping:
            self._reading, self._gone = False, True
            transport.close()
            return
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        ip = peer[0] if isinstance(peer, tuple) else ""
        refused = self.ctx.connections.admit(ip)
        if refused is not None:
            log.info("refusing connection from %s: %s", self.peer, refused)
            self._reading, self._gone = False, True
            transport.abort()
            return
        self._ip = ip
        if self._tls is not None:  # nothing is read before start_tls takes the transport over
            transport.pause_reading()
        self.session.peer = self.peer
        transport.set_write_buffer_limits(high=256 * 1024)
        loop = self._loop
        self._hangup = loop.create_future()
        self._context.run(client_host.set, ip)
        self._context.run(listener.set, self.listener)
        self._context.run(session.set, self.session)
        self._context.run(hangup.set, self._hangup)
        self._last_active = loop.time()
        self._watch_idle()
        self.task = loop.create_task(self._run(), context=self._context)
        self._on_start(self.task, self)

    def get_buffer(self, sizehint: int) -> memoryview:
        if not self._reading:  # bytes after shutdown or a violation are dropped unread
            self._frames.clear()
        return self._frames.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self._frames.buffer_updated(nbytes)
        if self._reading:
            self._charged += nbytes
            self.ctx.budget.available -= nbytes
            self._last_active = self._loop.time()
            if self._tls_ready:
                self._parse()

    def eof_received(self) -> bool:
        self._hang_up()  # its long waits answer now
        if self._reading:
            try:
                self._frames.at_eof()
            except FramingError as exc:
                self._violation(CloseConnection(str(exc)))
            else:
                self._end_requests()
        # Half-closed: the answers to what was read still go out (TLS has no half-close).
        return self._tls is None

    def pause_writing(self) -> None:
        self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone = True
        self._hang_up()
        self._end_requests()
        if self._drained is not None and not self._drained.done():
            self._drained.set_exception(ConnectionResetError("connection lost"))
            self._drained.exception()  # retrieved here in case no send is waiting on it
            self._drained = None
        if self.task is not None:  # nothing can be sent: unanswered requests go at once
            self.task.cancel()

    def stop_reading(self) -> None:
        """Shutdown: read no more requests; those already read are still answered."""
        if self._reading and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
        self._end_requests()

    # --- reading ----------------------------------------------------------------------------------

    def _parse(self) -> None:
        """Dispatch every whole frame received while fewer than max_in_flight are unanswered;
        answers ready at once leave together in one write when nothing is ahead of them. The
        batches of Produce requests answered at once are held meanwhile (from the first that
        more bytes follow), and written together before any answer leaves
        (AppendNotifier.hold)."""
        self.ctx.appends.begin_read()
        try:
            self._parse_frames()
        finally:
            self.ctx.appends.end_read()

    def _parse_frames(self) -> None:
        frames, answers, appends = self._frames, self._answers, self.ctx.appends
        added = False
        try:
            while True:
                while len(answers) < self._max_in_flight and self._unmute_timer is None:
                    frame = frames.next_frame()
                    if frame is None:
                        break
                    if frames.unread:  # more requests follow: their appends may share a write
                        appends.hold()
                    answers.append(self._dispatch(frame))
                    added = True
                else:  # stopped by max_in_flight: writing the ready answers makes room
                    if self._write_ready():
                        continue
                break
        except FramingError as exc:
            self._violation(CloseConnection(str(exc)))
            return
        except CloseConnection as exc:
            self._violation(exc)
            return
        if added:
            self._write_ready()
            if answers and not _polling(answers[0]):  # a long poll's reply writes or wakes
                self._wake()
        self._update_reading()

    def _write_ready(self) -> bool:
        """Write the answers at the head of the queue that were answered at once or by a long
        poll, if all bytes (or small record slices), in one write, while the writer task is idle
        (nothing of ours is on its way out) and the transport takes more; True if any left the
        queue."""
        answers = self._answers
        if self._wake_writer is None or self._wake_writer.done() or self._drained is not None \
                or self._gone or self.transport is None or not answers \
                or not _answered(answers[0]):
            return False
        self.ctx.appends.write_held()  # what they acknowledge is written first
        pieces: list[bytes] = []
        count = len(answers)
        while answers and _answered(head := answers[0]):
            ready = head if isinstance(head, list) else \
                _bytes(head.result()) if isinstance(head, asyncio.Future) else None
            if ready is None:
                break  # a big record slice: the writer sends it
            pieces += ready
            answers.popleft()
        if pieces:
            self.transport.write(b"".join(pieces))
        return len(answers) < count

    def _update_reading(self) -> None:
        """Pause reading while max_in_flight requests are unanswered or the broker's request
        budget is spent (unless this connection may finish the frame it is in); resume after."""
        pause = len(self._answers) >= self._max_in_flight or self._unmute_timer is not None or (
            self.ctx.budget.available <= 0 and not self.ctx.budget.may_read(
                self, self._frames.unread > 0, self._budget_refilled))
        if pause != self._read_paused and self._reading and self.transport is not None \
                and not self.transport.is_closing():
            self._read_paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def _budget_refilled(self) -> None:
        if self._reading:
            self._update_reading()

    def _mute(self, seconds: float) -> None:
        """Kafka's ThrottledChannel: read no more requests for `seconds`."""
        until = self._loop.time() + seconds
        timer = self._unmute_timer
        if timer is None or until > timer.when():
            if timer is not None:
                timer.cancel()
            self._unmute_timer = self._loop.call_at(until, self._unmute)
            self._update_reading()

    def _unmute(self) -> None:
        self._unmute_timer = None
        if self._reading:
            self._parse()

    def _refund(self, nbytes: int) -> None:
        if not self._released:
            self._charged -= nbytes
            self.ctx.budget.refund(nbytes)

    def _end_requests(self) -> None:
        if self._reading:
            self._reading = False
            self._answers.append(None)
            self._wake()

    def _violation(self, exc: CloseConnection) -> None:
        """Close now; unanswered requests are dropped with the connection."""
        log.warning("closing connection from %s: %s", self.peer, exc)
        self._close_now()

    def _close_now(self) -> None:
        self._reading, self._gone = False, True
        self._hang_up()
        if self.task is not None:
            self.task.cancel()

    def _hang_up(self) -> None:
        if self._hangup is not None and not self._hangup.done():
            self._hangup.set_result(None)

    def _watch_idle(self) -> None:
        """connections.max.idle.ms: close a connection that neither asked nor was answered for
        that long (one timer per connection, moved on lazily)."""
        limit = self.ctx.config.connections_max_idle_ms / 1000
        if limit <= 0 or self._gone:
            return
        loop = self._loop
        if loop.time() - self._last_active >= limit and not self._answers:
            log.debug("closing connection from %s: idle for %.0f ms", self.peer, limit * 1000)
            self._close_now()
            return
        when = max(self._last_active, loop.time() if self._answers else 0) + limit
        self._idle_timer = loop.call_at(when, self._watch_idle)

    def _wake(self) -> None:
        if self._wake_writer is not None and not self._wake_writer.done():
            self._wake_writer.set_result(None)

    def _dispatch(self, frame: bytes) -> Pending:
        if self.session.raw_tokens:
            return self._loop.create_task(self._raw_token(frame), context=self._context.copy())
        try:
            header, pos = parse_header(frame)
        except MalformedError as exc:
            raise CloseConnection(f"bad request header: {exc}") from None
        api = self.ctx.apis.get(header.api_key)
        if api is None:
            raise CloseConnection(f"unknown API key {header.api_key}")
        if self.session.sasl:  # (otherwise every request is admitted)
            self.session.admit(header.api_key)
        if not api.min_version <= header.api_version <= api.max_version:
            if header.api_key == ApiKey.ApiVersions:
                self._refund(len(frame) + 4)
                return [unsupported_api_versions(header, self.ctx.served_versions)]
            raise CloseConnection(f"{ApiKey(header.api_key).name} v{header.api_version} is not "
                                  f"served (v{api.min_version}-v{api.max_version})")
        if not known_version(header.api_key, header.api_version):
            raise CloseConnection(f"no schema for API {header.api_key} v{header.api_version}")
        try:
            request = api.decode(header, frame, pos)
        except MalformedError as exc:
            raise CloseConnection(str(exc)) from None
        if api.answers_now is not None and not self._unstarted and not self.ctx.quotas.active \
                and api.answers_now(self.ctx, header, request):
            return self._handle_now(api, header, request, len(frame) + 4)
        if api.poll is not None and not self._unstarted and not self.ctx.quotas.active:
            return self._poll(api.poll, header, request, len(frame) + 4)
        self._unstarted += 1
        return self._loop.create_task(
            self._handle(api, header, request, len(frame) + 4), context=self._context.copy())

    def _handle_now(self, api: Api, header: RequestHeader, request: Any, size: int) -> Pending:
        """_handle without a task, for a request whose handler cannot wait (Api.answers_now):
        its coroutine is run to its end at once. A failure is kept for the writer, as a task's
        would be."""
        started = time.perf_counter()
        answer = None
        try:
            if api.handle_now is not None:
                answer = self._context.copy().run(api.handle_now, self.ctx, header, request)
            else:
                answer = self._context.copy().run(run_now, api.handle(self.ctx, header, request))
        except Exception as exc:
            failed: asyncio.Future[Pieces] = self._loop.create_future()
            failed.set_exception(exc)
            return failed
        finally:
            self._refund(size)
            self.ctx.metrics.answered(header, time.perf_counter() - started, answer)
        return _encoded(header, answer) or []

    def _poll(self, poll: Poller, header: RequestHeader, request: Any, size: int) -> Pending:
        """_handle without a task, for a handler that mostly waits (Api.poll): its answer, if
        made at once, else the future its reply will complete."""
        slot: asyncio.Future[Pieces] = self._loop.create_future()
        started = time.perf_counter()

        def reply(answer: Any) -> None:
            self._refund(size)
            failed = isinstance(answer, BaseException)
            self.ctx.metrics.answered(header, time.perf_counter() - started,
                                      None if failed else answer)
            if slot.done():  # cancelled: the connection is gone
                return
            if failed:
                slot.set_exception(answer)
            else:
                slot.set_result(_encoded(header, answer))
            if self._answers and self._answers[0] is slot and not self._flush_due:
                self._flush_due = True  # once for the answers of this pass
                self.ctx.appends.defer(self._flush)

        try:
            self._context.copy().run(poll, self.ctx, header, request, reply)
        except Exception as exc:
            reply(exc)
        if slot.done() and _answered(slot) and (ready := _bytes(slot.result())) is not None:
            return ready  # answered at once, as bytes: _write_ready may write it
        return slot

    def _flush(self) -> None:
        """After a pass of long polls answered (AppendNotifier.defer), the first of them at the
        head of the queue: write what is ready there now, without waking the writer, which
        sends what it must itself (big record slices, failures)."""
        self._flush_due = False
        if self._write_ready():
            self._last_active = self._loop.time()
            if self._read_paused and self._reading:
                self._parse()  # room again for requests waiting in the buffer
        if self._answers and not _polling(self._answers[0]):
            self._wake()

    async def _handle(self, api: Api, header: RequestHeader, request: Any, size: int) -> Pieces:
        """Run the handler (timed, its answer's errors counted) and encode its answer; its
        `size` bytes go back to the request budget then."""
        self._unstarted -= 1
        started = time.perf_counter()
        answer = None
        try:
            if self.ctx.quotas.active:
                answer = await self._throttled(api, header, request)
            else:
                answer = await api.handle(self.ctx, header, request)
        finally:
            self._refund(size)
            self.ctx.metrics.answered(header, time.perf_counter() - started, answer)
        return _encoded(header, answer)

    async def _raw_token(self, frame: bytes) -> Pieces:
        """After SaslHandshake v0: a bare SASL token in, a bare one out; a failure is not
        answered (the protocol has no way to say it), the connection just closes."""
        try:
            reply = await authenticate(self.session, frame,
                                       self.ctx.config.connections_max_reauth_ms)
        except AuthenticationFailed:
            return None
        finally:
            self._refund(len(frame) + 4)
        return [len(reply).to_bytes(4, "big") + reply]

    def _authenticated(self, authenticated: Session) -> None:
        """SASL succeeded: later requests run as its principal, pipelined again, as big as any
        client's may be."""
        self._max_in_flight = self.ctx.config.max_in_flight
        self._frames.limit(self.ctx.config.socket_request_max_bytes, "socket.request.max.bytes")
        self._context.run(principal.set, authenticated.principal)

    async def _throttled(self, api: Api, header: RequestHeader, request: Any) -> Answer:
        """Handle a request under client quotas: its handler time charged to request_percentage,
        the larger of that throttle and the one its handler charged (bytes) in the answer, and
        this connection muted for it."""
        timed = Timed(api.handle(self.ctx, header, request))
        answer = await timed
        throttle = max(charged_throttle.get(), self.ctx.quotas.record(
            header.client_id or "", REQUEST_PERCENTAGE, timed.seconds))
        if throttle:
            if hasattr(answer, "throttle_time_ms"):  # encoded answers carry their handler's
                answer.throttle_time_ms = throttle
            self._max_in_flight = 1  # from now on read as Kafka reads: one request at a time
            self._mute(throttle / 1000)
            if header.api_version < CLIENT_THROTTLES_FROM.get(header.api_key, 0):
                await asyncio.sleep(throttle / 1000)
        return answer

    # --- writing ----------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self.transport is not None
        try:
            if self._tls is not None and not await self._start_tls(self._tls):
                return
            await self._write_answers()
        finally:
            self._reading, self._gone = False, True
            self._hang_up()
            while self._answers:
                pending = self._answers.popleft()
                if isinstance(pending, asyncio.Future):
                    pending.cancel()
            self.transport.close()
            for timer in (self._idle_timer, self._unmute_timer):
                if timer is not None:
                    timer.cancel()
            self.ctx.budget.release(self, self._charged)
            self._released = True
            if self._ip is not None:
                self.ctx.connections.release(self._ip)

    async def _start_tls(self, context: ssl.SSLContext) -> bool:
        """The TLS handshake, before any request; a client whose certificate was verified is
        its subject. A failure is one log line and the end of the connection."""
        assert self.transport is not None
        try:
            transport = await start_tls(self.transport, self, context)
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            log.info("failed authentication with %s (listener %s): TLS handshake failed: %s",
                     self.peer, self.listener, exc)
            return False
        self.transport, self._tls_ready = transport, True
        transport.set_write_buffer_limits(high=256 * 1024)
        subject = certificate_principal(transport.get_extra_info("ssl_object"))
        if subject is not None and not self.session.sasl:
            self.session.principal = subject
            principal.set(subject)  # this task runs in the connection's own context
            log.debug("authenticated %s as %s by its certificate", self.peer, subject)
        if self._reading:
            self._parse()
        return True

    async def _write_answers(self) -> None:
        answers, loop = self._answers, asyncio.get_running_loop()
        while True:
            if not answers:
                self._wake_writer = loop.create_future()
                await self._wake_writer
                continue
            if answers[0] is None:
                return
            if _polling(answers[0]):  # its reply writes it, or wakes us (_flush)
                self._wake_writer = loop.create_future()
                await self._wake_writer
                continue
            pieces: list[Any] = []
            try:
                if isinstance(answers[0], asyncio.Future):
                    await answers[0]
                while answers and (head := answers[0]) is not None and (
                        not isinstance(head, asyncio.Future) or head.done()):
                    answers.popleft()
                    answer = head.result() if isinstance(head, asyncio.Future) else head
                    if answer is not None:  # ...with every later answer that is ready too
                        pieces += answer
            except CloseConnection as exc:
                log.warning("closing connection from %s: %s", self.peer, exc)
                return
            except Exception:
                log.exception("request from %s failed; closing its connection", self.peer)
                return
            if self.session.closing and self._reading:  # a failed authentication's answer
                self.stop_reading()  # is the last
            if self._read_paused and self._reading:
                self._parse()  # room again for requests waiting in the buffer
            if self._gone:
                return
            try:
                await self._send(pieces)
            except (ConnectionError, OSError, RuntimeError) as exc:  # RuntimeError: sendfile
                log.debug("connection from %s lost: %s", self.peer, exc)  # on a closed transport
                return
            self._last_active = loop.time()

    async def _send(self, pieces: list[Any]) -> None:
        """Write pieces in order: each run of bytes as one write (one syscall for a burst of
        pipelined answers), each record slice by sendfile (under TLS, read and written). A
        small slice (a consumer woken by an append mostly gets one) is read and joins the bytes
        around it: one read and one send instead of three system calls and packets."""
        assert self.transport is not None
        run: list[bytes] = []
        for piece in pieces:
            if isinstance(piece, bytes):
                run.append(piece)
                continue
            if piece.length <= SMALL_SLICE:
                run.append(_read(piece.file.fileno(), piece.position, piece.length))
                continue
            if run:
                self.transport.write(b"".join(run))
                run = []
            if self._tls is not None:
                await self._write_slice(piece)
            else:
                await self._sendfile(piece)
        if run:
            self.transport.write(b"".join(run))
        if self._drained is not None:
            await self._drained
        elif self._gone:
            raise ConnectionResetError("connection lost")

    async def _write_slice(self, piece: Any) -> None:
        """TLS: encrypted bytes cannot be sent from the page cache, so the slice is read and
        written TLS_CHUNK bytes at a time, each waiting for room in the transport: the client
        receives and decrypts one chunk while the next is encrypted (a whole 32 MiB answer
        encrypted at once left both sides idle in turn, at a third of the speed), and a
        connection holds a chunk or so of an answer in memory, not all of it."""
        assert self.transport is not None
        fd, position, end = piece.file.fileno(), piece.position, piece.position + piece.length
        while position < end:
            chunk = _read(fd, position, min(TLS_CHUNK, end - position))
            self.transport.write(chunk)
            position += len(chunk)
            if self._drained is not None:
                await self._drained

    async def _sendfile(self, piece: Any) -> None:
        """Zero-copy: `os.sendfile` straight to the socket when nothing is queued ahead of it
        (usually all of it goes at once); `loop.sendfile` for what the socket does not take.
        loop.sendfile alone costs several event-loop turns and epoll changes per slice, which
        under load kept each long-polling fetch waiting for milliseconds."""
        assert self.transport is not None
        position, remaining = piece.position, piece.length
        transport = self.transport
        if transport.get_write_buffer_size() == 0 and not transport.is_closing():
            socket_fd, file_fd = transport.get_extra_info("socket").fileno(), piece.file.fileno()
            try:
                while remaining:
                    sent = os.sendfile(socket_fd, file_fd, position, remaining)
                    if not sent:
                        break
                    position += sent
                    remaining -= sent
            except (BlockingIOError, InterruptedError):
                pass
        if remaining:
            await asyncio.get_running_loop().sendfile(transport, piece.file, position, remaining)
