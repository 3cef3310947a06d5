"""One client connection: framing, pipelining, and in-order responses.

A reader task reads size-prefixed frames and starts one handler task per request; a writer task
awaits those tasks in arrival order and writes each answer, so requests run concurrently but
answers leave in the order asked (the protocol's rule). At most `max_in_flight` requests are
read ahead; past that the reader stops reading and TCP pushes back on the client. Answers that
are ready together leave in one write; record slices go out with sendfile. Anything that breaks
the protocol closes this connection only.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from kafka.protocol.api_key import ApiKey

from ..protocol.codec import (
    RequestHeader,
    encode_response,
    known_version,
    parse_header,
    unsupported_api_versions,
)
from ..protocol.primitives import INT32, MalformedError
from .context import Api, BrokerContext, CloseConnection, client_host

log = logging.getLogger("minikafka.broker")

Pieces = list[Any] | None  # bytes and record slices, or None when no answer is due
_NOTHING = object()


class Connection:
    def __init__(self, ctx: BrokerContext, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.ctx = ctx
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._answers: asyncio.Queue[asyncio.Future[Pieces] | None] = asyncio.Queue(
            ctx.config.max_in_flight)
        self._reading: asyncio.Task[None] | None = None

    async def run(self) -> None:
        self.writer.transport.set_write_buffer_limits(high=256 * 1024)
        peer = self.writer.get_extra_info("peername")
        client_host.set(peer[0] if isinstance(peer, tuple) else "")  # inherited by our tasks
        writing = asyncio.create_task(self._write_answers())
        self._reading = asyncio.create_task(self._read_requests())
        try:
            try:
                await self._reading
            except CloseConnection as exc:
                log.warning("closing connection from %s: %s", self.peer, exc)
                return  # unanswered requests are dropped with the connection
            except (asyncio.CancelledError, ConnectionError):
                pass  # shutdown (stop_reading), the writer gave up, or the client went away
            if not writing.done():
                await self._answers.put(None)  # the writer consumes, so there will be room
                await writing
        finally:
            writing.cancel()
            self._drop_pending()
            self.writer.close()

    def stop_reading(self) -> None:
        """Shutdown: read no more requests; those already read are still answered."""
        if self._reading is not None:
            self._reading.cancel()

    def _drop_pending(self) -> None:
        while not self._answers.empty():
            pending = self._answers.get_nowait()
            if pending is not None:
                pending.cancel()

    # --- reading ----------------------------------------------------------------------------------

    async def _read_requests(self) -> None:
        max_frame = self.ctx.config.max_frame_bytes
        while True:
            try:
                prefix = await self.reader.readexactly(4)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise CloseConnection("truncated frame size") from None
                return  # clean end of stream
            size = INT32.unpack(prefix)[0]
            if size < 0 or size > max_frame:
                raise CloseConnection(f"frame of {size} bytes is outside 0..{max_frame} "
                                      "(max_frame_bytes)")
            try:
                frame = await self.reader.readexactly(size)
            except asyncio.IncompleteReadError:
                raise CloseConnection(f"connection ended inside a {size}-byte frame") from None
            await self._answers.put(self._dispatch(frame))

    def _dispatch(self, frame: bytes) -> asyncio.Future[Pieces]:
        try:
            header, pos = parse_header(frame)
        except MalformedError as exc:
            raise CloseConnection(f"bad request header: {exc}") from None
        api = self.ctx.apis.get(header.api_key)
        if api is None:
            raise CloseConnection(f"unknown API key {header.api_key}")
        if not api.min_version <= header.api_version <= api.max_version:
            if header.api_key == ApiKey.ApiVersions:
                done: asyncio.Future[Pieces] = asyncio.get_running_loop().create_future()
                done.set_result([unsupported_api_versions(header, self.ctx.served_versions)])
                return done
            raise CloseConnection(f"{ApiKey(header.api_key).name} v{header.api_version} is not "
                                  f"served (v{api.min_version}-v{api.max_version})")
        if not known_version(header.api_key, header.api_version):
            raise CloseConnection(f"no schema for API {header.api_key} v{header.api_version}")
        try:
            request = api.decode(header, frame, pos)
        except MalformedError as exc:
            raise CloseConnection(str(exc)) from None
        return asyncio.create_task(self._handle(api, header, request))

    async def _handle(self, api: Api, header: RequestHeader, request: Any) -> Pieces:
        answer = await api.handle(self.ctx, header, request)
        if answer is None or isinstance(answer, list):
            return answer
        return [encode_response(header, answer)]

    # --- writing ----------------------------------------------------------------------------------

    async def _write_answers(self) -> None:
        following: Any = _NOTHING  # an answer taken from the queue but not ready yet
        while True:
            pending = await self._answers.get() if following is _NOTHING else following
            if pending is None:
                break
            pieces: list[Any] = []
            following = _NOTHING
            try:
                answer = await pending
                while True:  # add every later answer that is ready too
                    if answer is not None:
                        pieces += answer
                    if self._answers.empty():
                        break
                    following = self._answers.get_nowait()
                    if following is None or not following.done():
                        break
                    answer, following = following.result(), _NOTHING
            except CloseConnection as exc:
                log.warning("closing connection from %s: %s", self.peer, exc)
                break
            except Exception:
                log.exception("request from %s failed; closing its connection", self.peer)
                break
            try:
                await self._send(pieces)
            except (ConnectionError, OSError, RuntimeError) as exc:  # RuntimeError: sendfile
                log.debug("connection from %s lost: %s", self.peer, exc)  # on a closed transport
                break
        if following is not _NOTHING and following is not None:
            following.cancel()  # taken from the queue, so _drop_pending will not see it
        if self._reading is not None:
            self._reading.cancel()

    async def _send(self, pieces: list[Any]) -> None:
        """Write pieces in order: each run of bytes as one write (one syscall for a burst of
        pipelined answers), each record slice by sendfile."""
        run: list[bytes] = []
        for piece in pieces:
            if isinstance(piece, bytes):
                run.append(piece)
                continue
            if run:
                self.writer.write(b"".join(run))
                run = []
            await self._sendfile(piece)
        if run:
            self.writer.write(b"".join(run))
        await self.writer.drain()

    async def _sendfile(self, piece: Any) -> None:
        """Zero-copy: `os.sendfile` straight to the socket when nothing is queued ahead of it
        (usually all of it goes at once); `loop.sendfile` for what the socket does not take.
        loop.sendfile alone costs several event-loop turns and epoll changes per slice, which
        under load kept each long-polling fetch waiting for milliseconds."""
        position, remaining = piece.position, piece.length
        transport = self.writer.transport
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
