"""1,000 orders for scarce stock while services are SIGKILLed and restarted and a second
inventory instance joins: afterwards every order is final and every invariant holds."""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from pathlib import Path

from brokerkit import InProcessBroker
from minikafka.shop.demo import wait_settled
from minikafka.shop.events import NOTIFICATIONS
from minikafka.shop.generator import order_id
from minikafka.shop.monitor import BrokerProbe, check_invariants, statuses_of, unfinished

from .conftest import event_of, read_topic, start_shop

ORDERS = 1000
RATE = 250.0
STOCK = 120  # per product; the orders want about 340 of each, so most of them run out


def test_thousand_orders_through_kills_and_a_second_inventory(
        tmp_path: Path, shop_broker: InProcessBroker, probe: BrokerProbe) -> None:
    shop = start_shop(tmp_path / "shop", shop_broker,
                      {f"{i:03d}": STOCK for i in range(1, 51)},
                      orders=["--payment-limit", "1500"])
    try:
        generator = shop.generator(ORDERS, RATE, seed=7, restock_below=0)  # scarce on purpose
        chaos = [
            (0.5, lambda: shop.processes["orders"].restart(signal.SIGKILL)),
            (1.5, lambda: shop.processes["inventory"].restart(signal.SIGKILL)),
            (2.0, lambda: shop.add("inventory", "inventory-2")),
            (2.5, lambda: shop.processes["api"].restart(signal.SIGKILL)),
            (3.0, lambda: shop.processes["notifications"].restart(signal.SIGKILL)),
            (4.0, lambda: shop.processes["orders"].restart(signal.SIGKILL)),
            (5.0, lambda: shop.processes["inventory-2"].restart(signal.SIGKILL)),
        ]
        started = time.monotonic()
        ids = [order_id(n) for n in range(1, ORDERS + 1)]
        problems: list[str] = []
        while unfinished(statuses_of(shop.paths, ids)) and time.monotonic() - started < 150:
            while chaos and time.monotonic() - started >= chaos[0][0]:
                chaos.pop(0)[1]()
            problems += check_invariants(shop.paths, settled=False)  # never negative, ever
            time.sleep(0.1)
        assert not chaos
        assert generator.proc is not None and generator.proc.wait(30) == 0, generator.log()
        counts = statuses_of(shop.paths, ids)
        assert not unfinished(counts), counts
        assert counts["completed"] > 100 and counts["rejected"] > 100, counts
        assert problems == []

        assert wait_settled(shop.paths, probe, time.monotonic() + 60)
        assert check_invariants(shop.paths, settled=True) == []
        assert sum(probe.dead_letters().values()) == 0

        # On the topic too: one NotificationSent per (order, status), however often re-sent.
        sent: dict[tuple[str, str], set[str]] = defaultdict(set)
        for record in read_topic(shop_broker.bootstrap, NOTIFICATIONS):
            event = event_of(record)
            sent[event["order_id"], event["status"]].add(event["event_id"])
        assert all(len(ids_) == 1 for ids_ in sent.values())
        assert {o for o, _ in sent} == set(ids)
        assert all(p.running for p in shop.processes.values() if p.name != "generator")
    finally:
        shop.stop()
