"""The receive buffer on its own, fed bytes the way a socket may deliver them: one at a time,
split anywhere, several frames at once, frames larger than the buffer, and garbage."""

from __future__ import annotations

import struct

import pytest

from minikafka.protocol.framing import BUFFER_BYTES, STREAM_BYTES, FrameBuffer, FramingError


def framed(*bodies: bytes) -> bytes:
    return b"".join(struct.pack(">i", len(body)) + body for body in bodies)


def feed(frames: FrameBuffer, data: bytes) -> list[bytes]:
    """Read `data` in as many reads as the buffer asks for; return the frames it yields."""
    out = []
    while data:
        room = frames.get_buffer(-1)
        assert len(room) > 0
        n = min(len(room), len(data))
        room[:n] = data[:n]
        frames.buffer_updated(n)
        data = data[n:]
        while (frame := frames.next_frame()) is not None:
            out.append(frame)
    return out


BODIES = [b"first", b"", b"x" * 300, b"last"]


def test_split_at_every_byte_boundary() -> None:
    stream = framed(*BODIES)
    for cut in range(len(stream) + 1):
        frames = FrameBuffer(max_frame=1000, initial=64, min_free=16)
        got = feed(frames, stream[:cut]) + feed(frames, stream[cut:])
        assert got == BODIES, cut
        assert frames.unread == 0
        frames.at_eof()  # nothing cut short


def test_one_byte_at_a_time() -> None:
    frames = FrameBuffer(max_frame=1000, initial=64, min_free=16)
    stream = framed(*BODIES)
    got = [frame for i in range(len(stream)) for frame in feed(frames, stream[i:i + 1])]
    assert got == BODIES


def test_several_frames_in_one_read() -> None:
    frames = FrameBuffer(max_frame=1000)
    room = frames.get_buffer(-1)
    stream = framed(*BODIES)
    room[:len(stream)] = stream
    frames.buffer_updated(len(stream))
    assert [frames.next_frame() for _ in BODIES] == BODIES
    assert frames.next_frame() is None


def test_a_frame_larger_than_the_buffer_grows_it_then_it_shrinks_back() -> None:
    frames = FrameBuffer(max_frame=4 << 20)
    initial = len(frames.get_buffer(-1))
    big = bytes(range(256)) * (3 * STREAM_BYTES // 256)  # larger than a busy buffer
    assert feed(frames, framed(b"small", big, b"after")) == [b"small", big, b"after"]
    assert len(frames.get_buffer(-1)) == initial  # the large frame's memory is given back


def test_reads_that_fill_the_buffer_grow_it_up_to_stream_bytes() -> None:
    """A busy connection reads in large gulps; an idle one keeps its small buffer."""
    frames = FrameBuffer(max_frame=1 << 20)
    assert frames.capacity == BUFFER_BYTES
    feed(frames, framed(*[b"r" * 1000] * 2000))  # each read fills the room it is given
    assert frames.capacity == STREAM_BYTES


def test_memory_follows_the_bytes_received_not_the_announced_size() -> None:
    """A size prefix alone commits nothing (8 clients announcing 100 MiB each cost 800 MiB):
    the buffer doubles only when full of a frame still coming."""
    frames = FrameBuffer(max_frame=1 << 20, initial=64, min_free=16)
    body = bytes(range(256)) * 400
    stream = framed(body)
    received = 7
    assert feed(frames, stream[:received]) == []
    frames.get_buffer(-1)
    assert frames.capacity == 64
    growth = [64]
    while received < len(stream):
        step = min(50, len(stream) - received)
        got = feed(frames, stream[received:received + step])
        received += step
        assert frames.capacity <= 2 * (received + 16), received
        if frames.capacity != growth[-1]:
            growth.append(frames.capacity)
    assert got == [body]
    assert growth[:4] == [64, 128, 256, 512]  # doubling as the frame comes
    assert growth[-1] <= 2 * (len(body) + 4)


def test_unread_bytes_move_to_the_front_when_room_runs_out() -> None:
    frames = FrameBuffer(max_frame=1000, initial=64, min_free=16)
    assert feed(frames, framed(b"a" * 44) + b"\x00\x00") == [b"a" * 44]
    room = frames.get_buffer(-1)  # 14 bytes left at the end: under min_free
    assert len(room) == 64 - 2
    assert feed(frames, b"\x00\x03abc") == [b"abc"]


@pytest.mark.parametrize("size", [-1, -(2**31), 1001, 2**31 - 1])
def test_a_size_outside_the_bounds_is_an_error(size: int) -> None:
    frames = FrameBuffer(max_frame=1000)
    with pytest.raises(FramingError, match=f"frame of {size} bytes is outside 0..1000"):
        feed(frames, framed(b"fine") + struct.pack(">i", size) + b"rest")


def test_the_largest_allowed_frame_is_accepted() -> None:
    frames = FrameBuffer(max_frame=1000, initial=64, min_free=16)
    assert feed(frames, framed(b"m" * 1000)) == [b"m" * 1000]


@pytest.mark.parametrize(("data", "message"), [
    (b"\x00\x00", "truncated frame size"),
    (struct.pack(">i", 10) + b"short", "connection ended inside a 10-byte frame"),
    (framed(b"whole") + struct.pack(">i", 5), "connection ended inside a 5-byte frame"),
])
def test_truncated_at_eof(data: bytes, message: str) -> None:
    frames = FrameBuffer(max_frame=1000)
    feed(frames, data)
    with pytest.raises(FramingError, match=message):
        frames.at_eof()


def test_clear_drops_what_was_not_read() -> None:
    frames = FrameBuffer(max_frame=1000)
    feed(frames, struct.pack(">i", 10) + b"part")
    frames.clear()
    assert frames.unread == 0
    frames.at_eof()
    assert feed(frames, framed(b"next")) == [b"next"]
