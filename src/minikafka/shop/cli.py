"""`minikafka shop api|orders|inventory|notifications|generator` and `minikafka demo`.

Every command that reads or writes events takes `--bootstrap-server` (env KAFKA_BOOTSTRAP_SERVERS)
and `--schema-registry` (env SCHEMA_REGISTRY_URL), so the same programs run against our broker
and its registry or any Kafka cluster and Confluent registry.
"""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable
from pathlib import Path

from ..extras import require
from .settings import BOOTSTRAP_ENV, REGISTRY_ENV, ShopPaths, default_bootstrap, default_registry

DEFAULT_PATHS = ShopPaths(Path(os.environ.get("MINIKAFKA_DATA_DIR", "data")) / "shop")
Command = Callable[[argparse.Namespace], int]


def _shop_command(name: str, command: Command) -> Command:
    """Check the shop extra is installed, then run; client errors become the CLI's one-line
    error (a ConnectionError is an OSError)."""
    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        require("shop", name)
        from confluent_kafka import KafkaException
        from confluent_kafka.schema_registry import SchemaRegistryError

        try:
            return command(args)
        except KafkaException as exc:
            raise ConnectionError(f"Kafka: {exc.args[0]}") from None
        except SchemaRegistryError as exc:
            raise ConnectionError(f"schema registry {args.schema_registry}: {exc}") from None
    return run


def _service(args: argparse.Namespace) -> int:
    from .events import use_registry
    from .runtime import Service, run_service

    use_registry(args.schema_registry)
    service: Service
    if args.command_name == "orders":
        from .orders import OrderService
        service = OrderService(args.payment_limit)
    elif args.command_name == "inventory":
        from .inventory import InventoryService
        service = InventoryService(args.catalogue)
    else:
        from .notifications import NotificationService, SmtpSender
        sender = (SmtpSender(args.smtp_host, args.smtp_port, args.smtp_from, args.smtp_domain)
                  if args.smtp_host else None)
        service = NotificationService(sender)
    return run_service(service, args.bootstrap_server, args.db, max_attempts=args.max_attempts,
                       session_timeout_ms=args.session_timeout_ms)


def _api(args: argparse.Namespace) -> int:
    from .api import serve
    from .events import use_registry

    use_registry(args.schema_registry)
    return serve(args.bootstrap_server, args.orders_db, args.inventory_db, args.host, args.port)


def _generator(args: argparse.Namespace) -> int:
    from .generator import run_generator

    return run_generator(args.api, Path(args.state), args.count, args.rate, args.seed,
                         args.restock_below, args.restock_quantity)


def _demo(args: argparse.Namespace) -> int:
    from .demo import DemoOptions, run_demo

    if args.no_ui and args.orders is None:
        raise ValueError("--no-ui needs --orders N (it exits once they are all final)")
    return run_demo(DemoOptions(
        data_dir=args.data_dir, bootstrap=args.bootstrap_server, orders=args.orders,
        registry=args.schema_registry, rate=args.rate, ui=not args.no_ui, api_port=args.api_port,
        console_port=args.console_port, registry_port=args.schema_registry_port,
        broker_port=args.broker_port, seed=args.seed,
        timeout=args.timeout))


def _port_option(parser: argparse.ArgumentParser, flag: str, env: str, default: int,
                 what: str) -> None:
    """A port flag whose default moves to a free port when busy; given (or set in `env`), it
    is used as is."""
    # argparse converts a string default with `type`: a bad variable is a usage error.
    parser.add_argument(flag, type=int, default=os.environ.get(env),
                        help=f"{what} (env {env}; default {default}, or a free port if it is "
                        "busy; 0 picks a free port)")


def _bootstrap_option(parser: argparse.ArgumentParser, default: str | None) -> None:
    """The broker and the schema registry (`default` None: the demo's own broker's)."""
    parser.add_argument("-b", "--bootstrap-server", default=default, metavar="HOST:PORT",
                        help=f"Kafka-compatible broker(s) (env {BOOTSTRAP_ENV}; default: "
                        f"{default or 'start our own'})")
    registry = default_registry() if default else os.environ.get(REGISTRY_ENV)
    parser.add_argument("--schema-registry", default=registry, metavar="URL",
                        help=f"schema registry with Confluent's REST API (env {REGISTRY_ENV}; "
                        f"default: {registry or 'with our broker, its own'})")


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `shop …` and `demo` on the main parser's subcommands."""
    shop = sub.add_parser("shop", help="run one of the shop's services")
    commands = shop.add_subparsers(dest="shop_command", required=True, metavar="SERVICE")

    for name, text in (("orders", "the order service"), ("inventory", "the inventory service"),
                       ("notifications", "the notification service")):
        parser = commands.add_parser(name, help=text)
        _bootstrap_option(parser, default_bootstrap())
        parser.add_argument("--db", default=str(DEFAULT_PATHS.db(name)),
                            help="its SQLite database (default: %(default)s)")
        parser.add_argument("--max-attempts", type=int, default=3,
                            help="tries per event before it goes to the dead-letter topic")
        parser.add_argument("--session-timeout-ms", type=int, default=10_000,
                            help="how soon the group gives a dead instance's partitions away")
        parser.set_defaults(func=_shop_command(f"shop {name}", _service), command_name=name)
    orders_parser = commands.choices["orders"]
    orders_parser.add_argument("--payment-limit", type=float, default=2000.0,
                               help="simulated card limit: dearer orders are declined")
    commands.choices["inventory"].add_argument(
        "--catalogue", help="JSON file of products and starting stock (default: the shipped one)")
    notifications = commands.choices["notifications"]
    notifications.add_argument("--smtp-host", default=os.environ.get("SMTP_HOST"),
                               help="send e-mail through this relay (env SMTP_HOST) instead of "
                               "printing")
    notifications.add_argument("--smtp-port", type=int,
                               default=int(os.environ.get("SMTP_PORT", "25")))
    notifications.add_argument("--smtp-from", default=os.environ.get("SMTP_FROM", "shop@localhost"))
    notifications.add_argument("--smtp-domain", default=os.environ.get("SMTP_DOMAIN", "localhost"),
                               help="customers are user-<id>@<domain>")

    api = commands.add_parser("api", help="the web server (OpenAPI page at /docs)")
    _bootstrap_option(api, default_bootstrap())
    api.add_argument("--orders-db", default=str(DEFAULT_PATHS.db("orders")))
    api.add_argument("--inventory-db", default=str(DEFAULT_PATHS.db("inventory")))
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.set_defaults(func=_shop_command("shop api", _api))

    generator = commands.add_parser("generator", help="post the course's orders to the API")
    generator.add_argument("--api", default="http://127.0.0.1:8000", help="the shop API's URL")
    generator.add_argument("--state", default=str(DEFAULT_PATHS.generator_state),
                           help="where the next order number is kept (default: %(default)s)")
    generator.add_argument("--count", type=int, help="stop after N orders")
    generator.add_argument("--rate", type=float, default=5.0, help="orders per second")
    generator.add_argument("--seed", type=int, default=42)
    generator.add_argument("--restock-below", type=int, default=20, metavar="N",
                           help="restock products with fewer than N units available "
                           "(0: never; default: %(default)s)")
    generator.add_argument("--restock-quantity", type=int, default=100, metavar="N",
                           help="units each restock adds (default: %(default)s)")
    generator.set_defaults(func=_shop_command("shop generator", _generator))

    demo = sub.add_parser("demo", help="the shop: broker, services, generator, live view")
    demo.add_argument("--data-dir", default=str(DEFAULT_PATHS.root.parent),
                      help="state goes under DATA_DIR/shop (default: %(default)s)")
    _bootstrap_option(demo, os.environ.get(BOOTSTRAP_ENV))
    demo.add_argument("--rate", type=float, default=5.0, help="orders per second")
    demo.add_argument("--orders", type=int, help="stop generating after N orders")
    demo.add_argument("--no-ui", action="store_true",
                      help="headless: wait for the N orders, print a JSON summary, exit 0 only "
                      "if the invariants hold")
    _port_option(demo, "--broker-port", "MINIKAFKA_PORT", 9092, "our broker's port")
    _port_option(demo, "--api-port", "MINIKAFKA_API_PORT", 8000, "the shop API's port")
    _port_option(demo, "--console-port", "MINIKAFKA_UI_PORT", 8080,
                 "our broker's web console")
    _port_option(demo, "--schema-registry-port", "MINIKAFKA_SCHEMA_REGISTRY_PORT", 8081,
                 "our broker's schema registry")
    demo.add_argument("--timeout", type=float, default=300.0,
                      help="headless: give up on unfinished orders after this many seconds")
    demo.add_argument("--seed", type=int, default=42)
    demo.set_defaults(func=_shop_command("demo", _demo))
