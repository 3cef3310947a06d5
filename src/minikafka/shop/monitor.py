"""What the live view, the headless summary, the tests and the benchmark look at.

It reads the services' databases read-only and asks the broker for consumer lag and dead-letter
counts, the way an operator's dashboard would, and checks the shop's invariants.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from .events import FINAL_STATUSES, INPUT_TOPICS, PARTITIONS, dlq_topic
from .inventory import InventoryService, stock_view
from .notifications import NotificationService
from .orders import OrderService
from .runtime import read_only
from .settings import ShopPaths

SERVICES = (OrderService, InventoryService, NotificationService)


def _query(path: Path, sql: str, *params: object) -> list[dict[str, Any]]:
    view = read_only(path)
    if view is None:
        return []
    with view as db:
        return [dict(r) for r in db.execute(sql, params)]


def orders_by_status(paths: ShopPaths) -> Counter[str]:
    rows = _query(paths.db("orders"), "SELECT status, count(*) AS n FROM orders GROUP BY status")
    return Counter({r["status"]: r["n"] for r in rows})


def statuses_of(paths: ShopPaths, order_ids: list[str]) -> Counter[str]:
    """Status counts over `order_ids`; `unrecorded` counts those the order service lacks."""
    found: Counter[str] = Counter()
    for start in range(0, len(order_ids), 500):
        chunk = order_ids[start:start + 500]
        for row in _query(paths.db("orders"),
                          f"SELECT status, count(*) AS n FROM orders WHERE order_id IN "
                          f"({', '.join('?' * len(chunk))}) GROUP BY status", *chunk):
            found[row["status"]] += row["n"]
    missing = len(order_ids) - sum(found.values())
    if missing:
        found["unrecorded"] = missing
    return found


def unfinished(counts: Counter[str]) -> int:
    return sum(n for status, n in counts.items() if status not in FINAL_STATUSES)


def stock(paths: ShopPaths) -> list[dict[str, Any]]:
    view = read_only(paths.db("inventory"))
    if view is None:
        return []
    with view as db:
        return stock_view(db)


def notifications_sent(paths: ShopPaths) -> int:
    rows = _query(paths.db("notifications"),
                  "SELECT count(*) AS n FROM notifications WHERE delivered_at IS NOT NULL")
    return rows[0]["n"] if rows else 0


def pending_outbox(paths: ShopPaths) -> int:
    """Events committed by some service but not yet acknowledged by the broker."""
    return sum(r["n"] for s in SERVICES
               for r in _query(paths.db(s.name), "SELECT count(*) AS n FROM outbox"))


def check_invariants(paths: ShopPaths, settled: bool) -> list[str]:
    """Problems found (none when the invariants hold).

    Always: no count is negative and available + reserved + sold equals the starting stock of
    every product. Once the shop has settled (every order final, nothing in flight): nothing is
    left reserved, sold equals what completed orders bought, and every status an order took has
    exactly one delivered notification.
    """
    problems = []
    products = stock(paths)
    for p in products:
        if min(p["available"], p["reserved"], p["sold"]) < 0:
            problems.append(f"product {p['product_id']}: negative stock {p}")
        if p["available"] + p["reserved"] + p["sold"] != p["initial"]:
            problems.append(f"product {p['product_id']}: available + reserved + sold != initial")
    if not settled:
        return problems
    bought: Counter[str] = Counter()
    for row in _query(paths.db("orders"), "SELECT items FROM orders WHERE status = 'completed'"):
        for item in json.loads(row["items"]):
            bought[item["product_id"]] += item["quantity"]
    for p in products:
        if p["reserved"]:
            problems.append(f"product {p['product_id']}: {p['reserved']} left reserved")
        if p["sold"] != bought[p["product_id"]]:
            problems.append(f"product {p['product_id']}: sold {p['sold']} but completed orders "
                            f"bought {bought[p['product_id']]}")
    statuses = {(r["order_id"], r["status"]) for r in _query(
        paths.db("orders"), "SELECT order_id, status FROM order_history")}
    notified = Counter((r["order_id"], r["status"]) for r in _query(
        paths.db("notifications"),
        "SELECT order_id, status FROM notifications WHERE delivered_at IS NOT NULL"))
    missing = statuses - set(notified)
    extra = set(notified) - statuses
    doubled = [k for k, n in notified.items() if n > 1]
    for label, found in (("without a notification", missing),
                         ("notified but never taken", extra), ("notified twice", doubled)):
        if found:
            problems.append(f"{len(found)} (order, status) pair(s) {label}, e.g. "
                            f"{sorted(found)[0]}")
    return problems


class BrokerProbe:
    """Consumer lag per service and dead-letter counts, asked of the broker."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._consumers: dict[str, Consumer] = {}

    def _consumer(self, group: str) -> Consumer:
        """A client that reads `group`'s committed offsets without joining the group."""
        if group not in self._consumers:
            self._consumers[group] = Consumer({"bootstrap.servers": self.bootstrap,
                                               "group.id": group, "enable.auto.commit": False})
        return self._consumers[group]

    def _high(self, topic: str, partition: int) -> tuple[int, int]:
        low, high = self._consumer("shop-monitor").get_watermark_offsets(
            TopicPartition(topic, partition), timeout=5)
        return low, high

    def lag(self, service: str, topics: tuple[str, ...]) -> int:
        """Records in `topics` that the service's group has not committed yet."""
        partitions = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        committed = self._consumer(f"shop-{service}").committed(partitions, timeout=5)
        total = 0
        for tp in committed:
            low, high = self._high(tp.topic, tp.partition)
            total += high - max(tp.offset, low)
        return total

    def lags(self) -> dict[str, int]:
        return {s.name: self.lag(s.name, s.topics) for s in SERVICES}

    def dead_letters(self) -> dict[str, int]:
        counts = {}
        for topic in INPUT_TOPICS:
            dlq = dlq_topic(topic)
            counts[dlq] = sum(high - low for low, high in
                              (self._high(dlq, p) for p in range(PARTITIONS)))
        return counts

    def close(self) -> None:
        for consumer in self._consumers.values():
            consumer.close()
        self._consumers.clear()
