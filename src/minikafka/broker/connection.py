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
that breaks the protocol closes this connection only. The reader side, every request's path (the
frames, their dispatch, the answers made at once or by long polls, and their write), is the
compiled Dispatcher in dispatch.py that the connection holds (`requests`); the connection keeps
the protocol's callbacks, TLS, SASL, quotas, the writer task and sendfile.

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
from collections.abc import Callable
from typing import Any

from ..protocol.codec import RequestHeader
from ..protocol.framing import FramingError
from .bounds import hangup
from .context import (
    Answer,
    Api,
    BrokerContext,
    CloseConnection,
    client_host,
    listener,
    principal,
)
from .dispatch import (
    SMALL_SLICE,
    Answering,
    Dispatcher,
    Pieces,
    encoded,
    polling,
    read_slice,
    ready,
)
from .quotas import CLIENT_THROTTLES_FROM, REQUEST_PERCENTAGE, Timed, charged_throttle
from .sasl import AuthenticationFailed, Session, authenticate, session
from .tls import certificate_principal, start_tls

log = logging.getLogger("minikafka.broker")

TLS_CHUNK = 1024 * 1024  # record bytes read and encrypted at a time under TLS


class Connection(asyncio.BufferedProtocol):
    """Created per accepted socket; `task` (the writer) lives as long as the connection and is
    handed to `on_start` so the broker can wait for it on shutdown. `requests` (dispatch.py)
    takes the bytes received to the answers' queue."""

    def __init__(self, ctx: BrokerContext,
                 on_start: Callable[[asyncio.Task[None], Connection], None],
                 listener_name: str = "", tls: ssl.SSLContext | None = None,
                 sasl: bool = False) -> None:
        self.ctx = ctx
        self.listener = listener_name
        self._tls = tls
        self.session = Session("", listener_name, sasl, on_authenticated=self._authenticated)
        self._on_start = on_start
        self.peer = ""
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()
        self._context = contextvars.copy_context()  # with client_host; each handler a copy
        self.requests = Dispatcher(ctx, self, self.session, sasl, self._context, self._loop)
        # Under TLS, requests that arrive with the handshake's end wait for start_tls to hand
        # over the TLS transport (reading is paused and resumed on it)
        self.requests.parsing = tls is None
        self._ip: str | None = None  # counted in ctx.connections
        self._hangup: asyncio.Future[None] | None = None  # done when the client is gone
        self._idle_timer: asyncio.TimerHandle | None = None
        self._unmute_timer: asyncio.TimerHandle | None = None  # set while a quota mutes us

    # --- protocol callbacks -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = self.requests.transport = transport
        if self.ctx.stopping:
            self.requests.reading = False
            self.requests.gone = True
            transport.close()
            return
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        ip = peer[0] if isinstance(peer, tuple) else ""
        refused = self.ctx.connections.admit(ip)
        if refused is not None:
            log.info("refusing connection from %s: %s", self.peer, refused)
            self.requests.reading = False
            self.requests.gone = True
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
        self.requests.last_active = loop.time()
        self._watch_idle()
        self.task = loop.create_task(self._run(), context=self._context)
        self._on_start(self.task, self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.requests.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.requests.received(nbytes)

    def eof_received(self) -> bool:
        self._hang_up()  # its long waits answer now
        if self.requests.reading:
            try:
                self.requests.frames.at_eof()
            except FramingError as exc:
                self.violation(CloseConnection(str(exc)))
            else:
                self.requests.end_requests()
        # Half-closed: the answers to what was read still go out (TLS has no half-close).
        return self._tls is None

    def pause_writing(self) -> None:
        self.requests.drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drained = self.requests.drained
        if drained is not None and not drained.done():
            drained.set_result(None)
        self.requests.drained = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.requests.gone = True
        self._hang_up()
        self.requests.end_requests()
        drained = self.requests.drained
        if drained is not None and not drained.done():
            drained.set_exception(ConnectionResetError("connection lost"))
            drained.exception()  # retrieved here in case no send is waiting on it
            self.requests.drained = None
        if self.task is not None:  # nothing can be sent: unanswered requests go at once
            self.task.cancel()

    def stop_reading(self) -> None:
        """Shutdown: read no more requests; those already read are still answered."""
        if self.requests.reading and self.transport is not None \
                and not self.transport.is_closing():
            self.transport.pause_reading()
        self.requests.end_requests()

    # --- reading (the rest is the dispatcher's) ---------------------------------------------------

    def _mute(self, seconds: float) -> None:
        """Kafka's ThrottledChannel: read no more requests for `seconds`."""
        until = self._loop.time() + seconds
        timer = self._unmute_timer
        if timer is None or until > timer.when():
            if timer is not None:
                timer.cancel()
            self._unmute_timer = self._loop.call_at(until, self._unmute)
            self.requests.muted = True
            self.requests.update_reading()

    def _unmute(self) -> None:
        self._unmute_timer = None
        self.requests.muted = False
        if self.requests.reading:
            self.requests.parse()

    def violation(self, exc: CloseConnection) -> None:
        """Close now; unanswered requests are dropped with the connection."""
        log.warning("closing connection from %s: %s", self.peer, exc)
        self._close_now()

    def _close_now(self) -> None:
        self.requests.reading = False
        self.requests.gone = True
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
        if limit <= 0 or self.requests.gone:
            return
        loop, last_active = self._loop, self.requests.last_active
        if loop.time() - last_active >= limit and not self.requests.answers:
            log.debug("closing connection from %s: idle for %.0f ms", self.peer, limit * 1000)
            self._close_now()
            return
        when = max(last_active, loop.time() if self.requests.answers else 0) + limit
        self._idle_timer = loop.call_at(when, self._watch_idle)

    async def handle(self, api: Api, header: RequestHeader, request: Any, size: int) -> Pieces:
        """Run the handler (timed, its answer's errors counted) and encode its answer; its
        `size` bytes go back to the request budget then."""
        self.requests.unstarted -= 1
        started = time.perf_counter()
        answer = None
        try:
            if self.ctx.quotas.active:
                answer = await self._throttled(api, header, request)
            else:
                answer = await api.handle(self.ctx, header, request)
        finally:
            self.requests.refund(size)
            self.requests.metrics.answered(header, time.perf_counter() - started, answer)
        return encoded(header, answer)

    async def raw_token(self, frame: bytes) -> Pieces:
        """After SaslHandshake v0: a bare SASL token in, a bare one out; a failure is not
        answered (the protocol has no way to say it), the connection just closes."""
        try:
            reply = await authenticate(self.session, frame,
                                       self.ctx.config.connections_max_reauth_ms)
        except AuthenticationFailed:
            return None
        finally:
            self.requests.refund(len(frame) + 4)
        return [len(reply).to_bytes(4, "big") + reply]

    def _authenticated(self, authenticated: Session) -> None:
        """SASL succeeded: later requests run as its principal, pipelined again, as big as any
        client's may be."""
        self.requests.max_in_flight = self.ctx.config.max_in_flight
        self.requests.frames.limit(self.ctx.config.socket_request_max_bytes,
                                   "socket.request.max.bytes")
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
            # from now on read as Kafka reads: one request at a time
            self.requests.max_in_flight = 1
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
            requests = self.requests
            requests.reading, requests.gone = False, True
            self._hang_up()
            while requests.answers:
                pending = requests.answers.popleft()
                if isinstance(pending, asyncio.Future | Answering):
                    pending.cancel()
            self.transport.close()
            for timer in (self._idle_timer, self._unmute_timer):
                if timer is not None:
                    timer.cancel()
            self.ctx.budget.release(requests, requests.charged)
            requests.released = True
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
        self.transport = self.requests.transport = transport
        self.requests.parsing = True
        transport.set_write_buffer_limits(high=256 * 1024)
        subject = certificate_principal(transport.get_extra_info("ssl_object"))
        if subject is not None and not self.session.sasl:
            self.session.principal = subject
            principal.set(subject)  # this task runs in the connection's own context
            log.debug("authenticated %s as %s by its certificate", self.peer, subject)
        if self.requests.reading:
            self.requests.parse()
        return True

    async def _write_answers(self) -> None:
        requests, loop = self.requests, asyncio.get_running_loop()
        answers = requests.answers
        while True:
            if not answers or polling(answers[0]):  # a long poll's reply writes it, or wakes
                requests.wake_writer = waker = loop.create_future()  # us (Dispatcher.flush)
                await waker
                continue
            if answers[0] is None:
                return
            pieces: list[Any] = []
            try:
                if isinstance(answers[0], asyncio.Task):
                    await answers[0]
                while answers and (head := answers[0]) is not None and ready(head):
                    answers.popleft()
                    answer = head if isinstance(head, list) else head.result()
                    if answer is not None:  # ...with every later answer that is ready too
                        pieces += answer
            except CloseConnection as exc:
                log.warning("closing connection from %s: %s", self.peer, exc)
                return
            except Exception:
                log.exception("request from %s failed; closing its connection", self.peer)
                return
            if self.session.closing and requests.reading:  # a failed authentication's answer
                self.stop_reading()  # is the last
            if requests.read_paused and requests.reading:
                requests.parse()  # room again for requests waiting in the buffer
            if requests.gone:
                return
            try:
                await self._send(pieces)
            except (ConnectionError, OSError, RuntimeError) as exc:  # RuntimeError: sendfile
                log.debug("connection from %s lost: %s", self.peer, exc)  # on a closed transport
                return
            requests.last_active = loop.time()

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
                run.append(read_slice(piece.file.fileno(), piece.position, piece.length))
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
        if self.requests.drained is not None:
            await self.requests.drained
        elif self.requests.gone:
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
            chunk = read_slice(fd, position, min(TLS_CHUNK, end - position))
            self.transport.write(chunk)
            position += len(chunk)
            if self.requests.drained is not None:
                await self.requests.drained

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
