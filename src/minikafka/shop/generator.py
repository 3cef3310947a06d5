"""The order generator: the course's deterministic orders, POSTed to the shop's API at a rate.

Posting through the API (rather than producing OrderCreated directly) sends every order through
the same validation and the same idempotent producer as a customer's. Order n is always
`make_order(n, seed)`, its order id the id the API is given, so a retried POST is answered 409
(already recorded) instead of making a second order. A state file remembers the next number,
so a generator started again continues where it stopped.

While it runs it also restocks, through the API, every product whose shelf is below a mark: a
long demo would otherwise sell out and reject a growing share of its orders.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ..examples.orders import make_order

Accepted = Callable[[str, float], None]  # (order id, monotonic time the POST began)
RESTOCK_BELOW, RESTOCK_QUANTITY = 20, 100  # the generator's default top-up
RESTOCK_INTERVAL = 5.0  # seconds between looks at the shelves
POST_TIMEOUT = 30.0  # seconds for one POST's answer


class OrderPoster:
    """POSTs JSON to the API over kept-alive HTTP/1.1 connections, one request at a time each.

    The orders go this way rather than through httpx, whose CPU per request (over 1 ms here)
    made the generator the limit of the rate it could offer; this costs a tenth of that.
    """

    def __init__(self, api_url: str) -> None:
        url = urlsplit(api_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, document: object) -> tuple[int, bytes]:
        """The answer's status and body; OSError or EOFError if the connection failed."""
        body = json.dumps(document).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        async with asyncio.timeout(POST_TIMEOUT):
            reader, writer = (self._idle.pop() if self._idle else
                              await asyncio.open_connection(self.host, self.port))
            try:
                writer.write(head.encode() + body)
                status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode(
                    "latin-1").split("\r\n")
                headers = dict(_header(line) for line in lines if line)
                content = await reader.readexactly(int(headers["content-length"]))
            except BaseException:
                writer.close()
                raise
        if headers.get("connection") == "close":
            writer.close()
        else:
            self._idle.append((reader, writer))
        return int(status_line.split()[1]), content

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


def _header(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip().lower(), value.strip()


def order_id(number: int) -> str:
    return str(make_order(number)["order_id"])


def next_number(state: Path) -> int:
    """The first order number not yet sent (1 on a fresh start)."""
    try:
        return int(json.loads(state.read_text())["next"])
    except FileNotFoundError:
        return 1


async def _post(poster: OrderPoster, number: int, seed: int, on_accepted: Accepted | None,
                attempts: int = 50) -> bool:
    """POST order `number` until the API accepts it (or knows it); False after `attempts`."""
    order = make_order(number, seed)
    started = time.monotonic()
    for attempt in range(attempts):
        try:
            status, content = await poster.post("/orders", order)
        except (OSError, EOFError):  # refused, reset, timed out, or cut short
            status, content = 0, b""
        if status in (202, 409):
            if on_accepted is not None:
                on_accepted(order["order_id"], started)
            return True
        if status == 422:
            raise ValueError(f"the API refused order {number}: {content.decode()}")
        await asyncio.sleep(min(0.05 * (attempt + 1), 1.0))
    return False


async def restock_low(client: httpx.AsyncClient, below: int, quantity: int) -> list[str]:
    """Restock by `quantity` every product with fewer than `below` units available; return
    their ids."""
    response = await client.get("/products")
    response.raise_for_status()
    low = [p["product_id"] for p in response.json() if p["available"] < below]
    for product_id in low:
        added = await client.post(f"/products/{product_id}/restock", json={"quantity": quantity})
        added.raise_for_status()
    return low


async def _keep_stocked(client: httpx.AsyncClient, below: int, quantity: int) -> None:
    """`restock_low` every RESTOCK_INTERVAL seconds, until cancelled; an API that is down (a
    restart) is tried again next time."""
    while True:
        await asyncio.sleep(RESTOCK_INTERVAL)
        with contextlib.suppress(httpx.HTTPError):
            await restock_low(client, below, quantity)


async def generate(api_url: str, first: int, count: int | None, rate: float, seed: int = 42,
                   on_accepted: Accepted | None = None, progress: Callable[[int], None] | None
                   = None, stop: asyncio.Event | None = None, concurrency: int = 64,
                   restock_below: int = 0, restock_quantity: int = RESTOCK_QUANTITY) -> int:
    """Post orders `first`, `first + 1`, … at `rate` per second; return the next number unsent.

    Posts run concurrently (up to `concurrency`), each starting on schedule, so a slow answer
    does not lower the offered rate. `progress(n)` is told the lowest number not yet accepted.
    With `restock_below`, products below it are restocked by `restock_quantity` meanwhile.
    """
    stop = stop or asyncio.Event()
    limit = asyncio.Semaphore(concurrency)
    pending: set[int] = set()
    tasks: set[asyncio.Task[None]] = set()
    failures: list[int] = []
    number = first

    async def one(n: int) -> None:
        try:
            if not await _post(poster, n, seed, on_accepted):
                failures.append(n)
        finally:
            pending.discard(n)
            limit.release()
            if progress is not None:
                progress(min(pending, default=number))

    started = time.monotonic()
    poster = OrderPoster(api_url)
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:  # for restocking
        restocker = (asyncio.create_task(_keep_stocked(client, restock_below, restock_quantity))
                     if restock_below > 0 else None)
        while (count is None or number < first + count) and not stop.is_set() and not failures:
            due = started + (number - first) / rate if rate > 0 else 0
            delay = due - time.monotonic()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    break
                except TimeoutError:
                    pass
            await limit.acquire()
            pending.add(number)
            task = asyncio.create_task(one(number))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            number += 1
        if tasks:
            await asyncio.gather(*tasks)
        if restocker is not None:
            restocker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await restocker
    poster.close()
    if failures:
        raise ConnectionError(f"the API at {api_url} did not accept order(s) {sorted(failures)}")
    return number


def run_generator(api_url: str, state: Path, count: int | None, rate: float, seed: int,
                  restock_below: int = RESTOCK_BELOW,
                  restock_quantity: int = RESTOCK_QUANTITY) -> int:
    """Post orders until `count` are sent or SIGTERM/SIGINT, remembering progress in `state`."""
    first = next_number(state)
    state.parent.mkdir(parents=True, exist_ok=True)

    def remember(n: int) -> None:
        tmp = state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"next": n, "seed": seed}))
        tmp.replace(state)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"generator: posting orders from #{order_id(first)} at {rate}/s to {api_url}",
              flush=True)
        return await generate(api_url, first, count, rate, seed, progress=remember, stop=stop,
                              restock_below=restock_below, restock_quantity=restock_quantity)

    last = asyncio.run(main())
    remember(last)
    print(f"generator: stopped before #{order_id(last)}", flush=True)
    return 0
