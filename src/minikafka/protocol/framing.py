"""The receive side of Kafka's framing, sans I/O: a buffer that bytes are read into and that
size-prefixed frames (a big-endian int32 size, then that many bytes) are cut out of.

The caller owns the I/O: it asks `get_buffer()` for room, reads into it (asyncio's
`BufferedProtocol` does exactly this), reports the count with `buffer_updated(n)`, and takes
whole frames with `next_frame()` until it returns None. Reads go straight into the buffer and
each frame is copied once, when it is cut out. Unread bytes move to the front when little room
is left at the end.

Memory follows the bytes that arrived, never a frame's announced size: the buffer starts small
and doubles only when bytes filled it: when it is full of a frame still coming (up to that
frame's size), or when a read filled all the room it was given (up to STREAM_BYTES, so that a
busy connection reads in large gulps). So a client that announces 100 MiB and sends 3 bytes
costs a few KiB, an idle connection 16 KiB, and a big frame's bytes are copied about twice on
the way in. Once empty, a buffer larger than STREAM_BYTES goes back to its initial size.
"""

from __future__ import annotations

from .primitives import INT32, MalformedError

BUFFER_BYTES = 16 * 1024  # the receive buffer at first
STREAM_BYTES = 256 * 1024  # grown by full reads up to this; a larger one shrinks when empty
MIN_FREE = 4 * 1024  # less room than this left at the end: move the unread bytes to the front


class FramingError(MalformedError):
    """The byte stream cannot be cut into frames any more: the connection must end."""


class FrameBuffer:
    """Receive buffer of one connection. `max_frame` bounds a frame's announced size; a size
    outside 0..max_frame raises FramingError from `next_frame()`."""

    def __init__(self, max_frame: int, initial: int = BUFFER_BYTES,
                 min_free: int = MIN_FREE) -> None:
        self.limit(max_frame, "socket.request.max.bytes")
        self._initial = initial
        self._min_free = min_free
        self._buf = bytearray(initial)
        self._view = memoryview(self._buf)
        self._start = self._end = 0  # the unread bytes are _buf[_start:_end]
        self._filled = False  # the last read filled all the room it was given

    def limit(self, max_frame: int, setting: str) -> None:
        """Bound frames to `max_frame` bytes from now on; `setting` names the bound in errors."""
        self._max_frame, self._setting = max_frame, setting

    @property
    def capacity(self) -> int:
        """Bytes the buffer holds memory for."""
        return len(self._buf)

    @property
    def unread(self) -> int:
        """Bytes received and not yet taken as frames."""
        return self._end - self._start

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Room to read into (never empty), at the end of the unread bytes. The view stays
        valid until the next call: a buffer that must grow is replaced, never resized, since
        the caller may still hold the old view. `sizehint` is ignored, as asyncio allows."""
        start, end, capacity = self._start, self._end, len(self._buf)
        if self._filled and capacity < STREAM_BYTES:
            self._filled = False  # more came than fitted: read more at a time
            self._compact(2 * capacity)
        elif start == end:
            self._start = self._end = 0
            if capacity > STREAM_BYTES:  # a large frame has gone: give its memory back
                self._buf = bytearray(self._initial)
                self._view = memoryview(self._buf)
        elif capacity - end < self._min_free:
            unread = end - start
            if unread + self._min_free > capacity:  # full of a frame still coming: double
                capacity = min(2 * capacity, max(self._frame_end(), unread + self._min_free))
            self._compact(capacity)
        return self._view[self._end:]

    def buffer_updated(self, nbytes: int) -> None:
        """`nbytes` were written at the start of the last `get_buffer()` view."""
        self._end += nbytes
        self._filled = self._end == len(self._buf)

    def next_frame(self) -> bytes | None:
        """The next whole frame's body (without its size), or None until more bytes come."""
        start = self._start
        if self._end - start < 4:
            return None
        size = INT32.unpack_from(self._buf, start)[0]
        if size < 0 or size > self._max_frame:
            raise FramingError(f"frame of {size} bytes is outside 0..{self._max_frame}"
                               f" ({self._setting})")
        stop = start + 4 + size
        if stop > self._end:
            return None
        self._start = stop
        return bytes(self._view[start + 4:stop])

    def clear(self) -> None:
        """Drop the unread bytes (a connection that stopped reading requests)."""
        self._start = self._end = 0

    def at_eof(self) -> None:
        """The peer sent its last byte: raise FramingError if any unread bytes remain (a frame,
        or a frame's size, cut short)."""
        unread = self._end - self._start
        if unread >= 4:
            size = INT32.unpack_from(self._buf, self._start)[0]
            raise FramingError(f"connection ended inside a {size}-byte frame")
        if unread:
            raise FramingError("truncated frame size")

    def _frame_end(self) -> int:
        """Bytes from _start to the end of the frame being received (at least its prefix)."""
        if self._end - self._start < 4:
            return 4
        size = INT32.unpack_from(self._buf, self._start)[0]
        return 4 + size if 0 <= size <= self._max_frame else 4

    def _compact(self, capacity: int) -> None:
        """Move the unread bytes to the front, into a new buffer if it must grow (the old one
        may still be exported to the caller, so it is never resized)."""
        unread = self._end - self._start
        if capacity > len(self._buf):
            buf = bytearray(capacity)
            buf[:unread] = self._view[self._start:self._end]
            self._buf, self._view = buf, memoryview(buf)
        else:
            self._view[:unread] = self._buf[self._start:self._end]
        self._start, self._end = 0, unread
