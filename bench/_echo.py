"""An asyncio server that sends back whatever it receives, and does nothing else.

`python -m bench requests` drives it as it drives the broker, one request at a time, to show what
an unpipelined request costs a Python event loop before any work: the loop's turn and the
receive and send system calls. The broker's unpipelined figures sit on this floor.
Run as `python -m bench._echo PORT` (127.0.0.1).
"""

from __future__ import annotations

import asyncio
import sys


class Echo(asyncio.BufferedProtocol):
    """Read into one buffer (as the broker's connections do) and write each read back."""

    def __init__(self) -> None:
        self.buffer = memoryview(bytearray(1 << 16))
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        assert self.transport is not None
        self.transport.write(bytes(self.buffer[:nbytes]))


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
