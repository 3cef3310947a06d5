"""The course exercise, done on a real log: an order generator and an order printer in parallel.

The generator writes JSON orders keyed by order id to topic `orders`; the printer reads them as
group `order-printer`, committing after each one, so a printer killed at any moment and started
again continues after the last order it committed: nothing is skipped, and at most the one order
it had printed but not yet committed is printed again.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from ..client import Consumer, Producer

TOPIC = "orders"
PARTITIONS = 3


def make_order(number: int, seed: int = 42) -> dict[str, Any]:
    """Order `number`, the same for the same seed whenever it is made."""
    rng = random.Random(f"{seed}:{number}")
    items: list[dict[str, Any]] = []
    for _ in range(rng.randint(1, 5)):
        items.append({
            "product_id": f"{rng.randint(1, 50):03d}",
            "quantity": rng.randint(1, 10),
            "price": round(rng.uniform(1, 100), 2),
        })
    total = round(sum(i["price"] * i["quantity"] for i in items), 2)
    return {
        "order_id": f"{number:04d}",
        "user_id": f"{rng.randint(1, 99999):05d}",
        "items": items,
        "total_price": total,
    }


def run_producer(data_dir: str, rate: float = 5.0, count: int | None = None,
                 seed: int = 42) -> int:
    with Producer(data_dir, default_partitions=PARTITIONS) as producer:
        producer.partitions_for(TOPIC)
        already = sum(producer.log.partition(TOPIC, p).high_watermark
                      for p in range(producer.partitions_for(TOPIC)))
        number = already + 1
        print(f"generator: {already} order(s) already in {TOPIC!r}, continuing at "
              f"#{number:04d}", flush=True)
        while count is None or number <= count:
            order = make_order(number, seed)
            sent = producer.send(TOPIC, json.dumps(order), key=order["order_id"])
            print(f"generator: order #{order['order_id']} -> partition {sent.partition} "
                  f"offset {sent.offset}", flush=True)
            number += 1
            time.sleep(1 / rate if rate > 0 else 0)
    return 0


def run_consumer(data_dir: str, group: str = "order-printer", idle_exit: float | None = None
                 ) -> int:
    with Consumer(data_dir, TOPIC, group_id=group, auto_offset_reset="earliest",
                  enable_auto_commit=False) as consumer:
        committed = {p: consumer.committed(t, p) for t, p in consumer.assignment()}
        print(f"printer: resuming group {group!r} at committed offsets {committed} "
              "(an order printed but not committed before a crash is printed again)", flush=True)
        idle_since = time.monotonic()
        while True:
            messages = consumer.poll(timeout=0.5)
            for m in messages:
                order = json.loads(m.value or b"{}")
                print(f"printer: order #{order['order_id']} user {order['user_id']} "
                      f"{len(order['items'])} item(s) total {order['total_price']:.2f} "
                      f"[p{m.partition}@{m.offset}]", flush=True)
                consumer.commit([(m.topic, m.partition)])
            if messages:
                idle_since = time.monotonic()
            elif idle_exit is not None and time.monotonic() - idle_since > idle_exit:
                return 0


def run_demo(data_dir: str, rate: float = 5.0, orders: int | None = None, seed: int = 42) -> int:
    """Generator and printer as two processes, their output interleaved, until Ctrl-C."""
    console = Console(highlight=False)
    console.print(f"[bold]minikafka demo[/]: data in {data_dir!r}; Ctrl-C stops. Kill the "
                  "printer (or this demo) at any moment and start again: it resumes.")
    base = [sys.executable, "-m", "minikafka", "example", "--data-dir", data_dir]
    extra = ["--seed", str(seed), "--rate", str(rate)]
    if orders is not None:
        extra += ["--orders", str(orders)]
    procs = {
        "generator": subprocess.Popen([*base, "producer", *extra], stdout=subprocess.PIPE,
                                      text=True),
        "printer": subprocess.Popen([*base, "consumer"], stdout=subprocess.PIPE, text=True),
    }
    styles = {"generator": "cyan", "printer": "green"}

    def pump(name: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            console.print(f"[{styles[name]}]{escape(line.rstrip())}[/]")

    threads = [threading.Thread(target=pump, args=item, daemon=True) for item in procs.items()]
    for t in threads:
        t.start()
    try:
        procs["generator"].wait()
        while orders is not None and procs["printer"].poll() is None:
            time.sleep(0.5)  # let the printer catch up, then stop it below
            if _caught_up(data_dir):
                break
    except KeyboardInterrupt:
        pass
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        for t in threads:
            t.join(timeout=1)
    return 0


def _caught_up(data_dir: str, group: str = "order-printer") -> bool:
    from ..log import LogManager

    with LogManager(data_dir) as log:
        committed = log.offsets.fetch(group)
        done = {tp: c.offset for tp, c in committed.items()}
        return all(done.get((TOPIC, p), 0) >= log.partition(TOPIC, p).high_watermark
                   for p in range(log.topic_config(TOPIC).partitions))
