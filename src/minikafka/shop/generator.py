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

import aiohttp

from ..examples.orders import make_order

Accepted = Callable[[str, float], None]  # (order id, monotonic time the POST began)
RESTOCK_BELOW, RESTOCK_QUANTITY = 20, 100  # the generator's default top-up
RESTOCK_INTERVAL = 5.0  # seconds between looks at the shelves
POST_TIMEOUT = 30.0  # seconds for one request's answer


def api_session(api_url: str, connections: int = 100) -> aiohttp.ClientSession:
    """An HTTP client of the API: up to `connections` kept-alive connections (aiohttp's pool;
    its CPU per POST is a fraction of httpx's, which was over 1 ms here and made the generator
    the limit of the rate it could offer)."""
    return aiohttp.ClientSession(base_url=api_url,
                                 connector=aiohttp.TCPConnector(limit=connections),
                                 timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT),
                                 raise_for_status=False)


def order_id(number: int) -> str:
    return str(make_order(number)["order_id"])


def next_number(state: Path) -> int:
    """The first order number not yet sent (1 on a fresh start)."""
    try:
        return int(json.loads(state.read_text())["next"])
    except FileNotFoundError:
        return 1


async def _post(session: aiohttp.ClientSession, number: int, seed: int,
                on_accepted: Accepted | None, attempts: int = 50) -> bool:
    """POST order `number` until the API accepts it (or knows it); False after `attempts`."""
    order = make_order(number, seed)
    started = time.monotonic()
    for attempt in range(attempts):
        try:
            async with session.post("/orders", json=order) as response:
                status, content = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError):  # refused, reset, timed out, or cut short
            status, content = 0, b""
        if status in (202, 409):
            if on_accepted is not None:
                on_accepted(order["order_id"], started)
            return True
        if status == 422:
            raise ValueError(f"the API refused order {number}: {content.decode()}")
        await asyncio.sleep(min(0.05 * (attempt + 1), 1.0))
    return False


async def restock_low(session: aiohttp.ClientSession, below: int, quantity: int) -> list[str]:
    """Restock by `quantity` every product with fewer than `below` units available; return
    their ids."""
    async with session.get("/products", raise_for_status=True) as response:
        low = [p["product_id"] for p in await response.json() if p["available"] < below]
    for product_id in low:
        async with session.post(f"/products/{product_id}/restock", json={"quantity": quantity},
                                raise_for_status=True):
            pass
    return low


async def _keep_stocked(session: aiohttp.ClientSession, below: int, quantity: int) -> None:
    """`restock_low` every RESTOCK_INTERVAL seconds, until cancelled; an API that is down (a
    restart) is tried again next time."""
    while True:
        await asyncio.sleep(RESTOCK_INTERVAL)
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            await restock_low(session, below, quantity)


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
            if not await _post(session, n, seed, on_accepted):
                failures.append(n)
        finally:
            pending.discard(n)
            limit.release()
            if progress is not None:
                progress(min(pending, default=number))

    started = time.monotonic()
    async with api_session(api_url, concurrency) as session:
        restocker = (asyncio.create_task(_keep_stocked(session, restock_below, restock_quantity))
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
