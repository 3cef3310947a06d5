"""`minikafka demo`: our broker, the four services and the generator, with a live view.

Everything runs as child processes with its state under `<data-dir>/shop` (the broker's log, the
services' databases, the generator's progress, one log file per process), so a demo stopped with
Ctrl-C and started again continues where it was. Given a broker (`--bootstrap-server`), it runs
the shop against that one (and `--schema-registry`'s registry) instead of starting ours.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from .clients import ensure_topics
from .events import FINAL_STATUSES
from .generator import next_number, order_id
from .monitor import (
    BrokerProbe,
    check_invariants,
    notifications_sent,
    orders_by_status,
    pending_outbox,
    statuses_of,
    stock,
    unfinished,
)
from .ports import choose_port
from .processes import BrokerProcess
from .settings import ShopPaths, default_registry
from .stack import ShopStack

STATUS_ORDER = ("created", "confirmed", "paid", "shipped", "completed", "rejected")
BROKER_ARGS = ("--group-initial-rebalance-delay-ms", "300", "--num-partitions", "3")


@dataclass
class DemoOptions:
    data_dir: str
    bootstrap: str | None = None
    registry: str | None = None  # with `bootstrap`: its schema registry (default: settings')
    orders: int | None = None
    rate: float = 5.0
    ui: bool = True
    api_port: int | None = None  # None: the default, or a free port if it is busy (ports.py)
    console_port: int | None = None
    registry_port: int | None = None
    broker_port: int | None = None
    seed: int = 42
    timeout: float = 300.0
    service_args: list[str] = field(default_factory=list)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def run_demo(options: DemoOptions) -> int:
    # A closed terminal (SIGHUP) or a kill (SIGTERM) stops everything as cleanly as Ctrl-C.
    for sig in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    paths = ShopPaths(Path(options.data_dir) / "shop")
    ports, notes = _ports(options)
    for note in notes:
        print(f"minikafka demo: {note}", file=sys.stderr, flush=True)
    broker = None
    if options.bootstrap is None:
        console = ("--ui-port", str(ports["console"])) if options.ui else ("--no-ui",)
        broker = BrokerProcess(paths.broker_dir, *BROKER_ARGS, *console, "--schema-registry-port",
                               str(ports["registry"]), port=ports["broker"],
                               log_path=paths.logs / "broker.log")
        try:
            broker.start()
        except RuntimeError:
            raise ValueError(f"the broker did not start: see {broker.log_path}") from None
    if broker is None:
        bootstrap, registry = options.bootstrap, options.registry or default_registry()
    elif broker.registry_url is None:
        broker.stop()
        raise ValueError(f"the broker's schema registry did not start: see {broker.log_path}")
    else:
        bootstrap, registry = broker.bootstrap, broker.registry_url
    assert bootstrap is not None
    stack = ShopStack(paths, bootstrap, registry, ports["api"], options.service_args)
    probe = BrokerProbe(bootstrap)
    try:
        ensure_topics(bootstrap)
        stack.start()
        first = next_number(paths.generator_state)
        stack.generator(options.orders, options.rate, options.seed)
        if options.ui:
            _live(paths, stack, probe, bootstrap, broker.console_url if broker else None)
            return 0
        summary = _headless(paths, probe, first, options)
        print(json.dumps(summary), flush=True)
        return 0 if summary["invariants_hold"] and summary["all_final"] else 1
    except KeyboardInterrupt:
        return 0
    finally:
        probe.close()
        stack.stop()
        if broker is not None:
            broker.stop()


def _ports(options: DemoOptions) -> tuple[dict[str, int], list[str]]:
    """The broker's, the API's, the console's and the registry's ports, and what to tell the
    user about them; a busy port the user asked for raises ValueError (one line). Checked
    before anything starts."""
    wanted = [("api", options.api_port, 8000, "--api-port", "the shop's API")]
    if options.bootstrap is None:
        wanted.append(("broker", options.broker_port, 9092, "--broker-port", "the broker"))
        wanted.append(("registry", options.registry_port, 8081, "--schema-registry-port",
                       "the schema registry"))
        if options.ui:
            wanted.append(("console", options.console_port, 8080, "--console-port",
                           "the web console"))
    ports, notes = {"broker": 0, "console": 0, "registry": 0}, []
    for name, requested, default, flag, what in wanted:
        ports[name], note = choose_port(requested, default, flag, what)
        if note:
            notes.append(note)
    return ports, notes


def wait_settled(paths: ShopPaths, probe: BrokerProbe, deadline: float) -> bool:
    """Wait until no service has anything left to read or publish; False at the deadline."""
    while time.monotonic() < deadline:
        if not any(probe.lags().values()) and not pending_outbox(paths):
            return True
        time.sleep(0.3)
    return False


def _headless(paths: ShopPaths, probe: BrokerProbe, first: int,
              options: DemoOptions) -> dict[str, Any]:
    assert options.orders is not None
    ids = [order_id(n) for n in range(first, first + options.orders)]
    started = time.monotonic()
    deadline = started + options.timeout
    counts = statuses_of(paths, ids)
    while unfinished(counts) and time.monotonic() < deadline:
        time.sleep(0.5)
        counts = statuses_of(paths, ids)
    all_final = not unfinished(counts)
    settled = all_final and wait_settled(paths, probe, deadline + 30)
    problems = check_invariants(paths, settled=settled)
    dead = sum(probe.dead_letters().values())
    return {
        "orders": options.orders, "first_order": ids[0] if ids else None,
        "by_status": dict(sorted(counts.items())), "all_final": all_final,
        "notifications_sent": notifications_sent(paths), "dead_letters": dead,
        "invariants_hold": settled and not problems, "problems": problems[:5],
        "seconds": round(time.monotonic() - started, 1),
    }


def _live(paths: ShopPaths, stack: ShopStack, probe: BrokerProbe, bootstrap: str,
          console_url: str | None) -> None:
    """Refresh the view every second until Ctrl-C."""
    console = Console()
    web = f", console {console_url}" if console_url else ""
    console.print(f"[bold]minikafka shop[/]: broker {bootstrap}{web}, schema registry "
                  f"{stack.registry}, API {stack.api_url}/docs, "
                  f"state in {paths.root}, logs in {paths.logs}. Ctrl-C stops; run again to "
                  "continue.")
    history: deque[tuple[float, int]] = deque(maxlen=6)
    with Live(console=console, refresh_per_second=2) as live:
        while True:
            counts = orders_by_status(paths)
            history.append((time.monotonic(), sum(counts.values())))
            live.update(_view(paths, stack, probe, counts, history))
            time.sleep(1)


def _view(paths: ShopPaths, stack: ShopStack, probe: BrokerProbe, counts: Counter[str],
          history: deque[tuple[float, int]]) -> Group:
    (t0, n0), (t1, n1) = history[0], history[-1]
    rate = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
    orders = Table(title=f"orders ({rate:.1f}/s)", show_edge=False)
    for status in STATUS_ORDER:
        orders.add_column(status, justify="right",
                          style="bold" if status in FINAL_STATUSES else None)
    orders.add_row(*(str(counts.get(s, 0)) for s in STATUS_ORDER))

    services = Table(title="services", show_edge=False)
    for column in ("process", "state", "lag"):
        services.add_column(column)
    lags = probe.lags()
    for name, process in stack.processes.items():
        services.add_row(name, "[green]running[/]" if process.running else "[red]stopped[/]",
                         str(lags.get(name, "")))
    dead = Table(title=f"dead letters · notifications sent {notifications_sent(paths)}",
                 show_edge=False)
    letters = probe.dead_letters()
    for topic in letters:
        dead.add_column(topic, justify="right")
    dead.add_row(*(str(n) for n in letters.values()))

    products = sorted(stock(paths), key=lambda p: p["available"])[:8]
    shelf = Table(title="stock (lowest available first)", show_edge=False)
    for column in ("product", "name", "available", "reserved", "sold"):
        shelf.add_column(column, justify="left" if column == "name" else "right")
    for p in products:
        shelf.add_row(p["product_id"], p["name"], str(p["available"]), str(p["reserved"]),
                      str(p["sold"]))
    return Group(orders, services, dead, shelf)
