"""`minikafka`: topics, produce, consume, serve, demo.

Errors are one line on stderr and a non-zero exit; a traceback is a bug.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence

from . import __version__
from .broker import add_arguments as add_broker_arguments
from .broker import load_config as load_broker_config
from .broker import serve as serve_broker
from .cli_backends import (
    Backend,
    ConsumeOptions,
    ProduceOptions,
    RawRecord,
    TopicInfo,
    open_backend,
)
from .client import Message
from .errors import KafkaError

DEFAULT_DATA_DIR = os.environ.get("MINIKAFKA_DATA_DIR", "data")
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
_FORMAT_TOKEN = re.compile(r"%[tpokKsSTh%]|\\[nt]")


class CliError(Exception):
    """A user mistake, reported as one line."""


# --- topics --------------------------------------------------------------------------------------


def _parse_configs(pairs: Sequence[str]) -> dict[str, str]:
    configs = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"--config expects NAME=VALUE, got {pair!r}")
        configs[name] = value
    return configs


def _backend(args: argparse.Namespace) -> Backend:
    if args.bootstrap_server and args.data_dir:
        raise CliError("give either --data-dir (in-process) or --bootstrap-server, not both")
    return open_backend(args.bootstrap_server, args.data_dir or DEFAULT_DATA_DIR)


def cmd_topics(args: argparse.Namespace) -> int:
    backend = _backend(args)
    try:
        if args.action == "create":
            count = backend.create_topic(args.name, args.partitions, _parse_configs(args.config))
            print(f"created topic {args.name!r} with {count} partition(s)")
        elif args.action == "delete":
            backend.delete_topic(args.name)
            print(f"deleted topic {args.name!r}")
        elif args.action == "list":
            for topic in backend.list_topics():
                print(topic)
        elif args.action == "describe":
            for topic in [args.name] if args.name else backend.list_topics():
                _print_topic(backend.describe_topic(topic))
    finally:
        backend.close()
    return 0


def _print_topic(info: TopicInfo) -> None:
    extra = ", ".join(f"{k}={v}" for k, v in info.configs.items())
    print(f"topic {info.name!r}: {len(info.partitions)} partition(s)"
          + (f"; {extra}" if extra else ""))
    for p in info.partitions:
        size = "" if p.size is None else f", {p.size} bytes"
        print(f"  partition {p.partition}: start offset {p.start_offset}, end offset "
              f"{p.end_offset}{size}")


# --- produce -------------------------------------------------------------------------------------


def _stdin_records(sep: str | None) -> Iterator[RawRecord]:
    for line in sys.stdin.buffer:
        line = line.rstrip(b"\r\n")
        if sep is None:
            yield None, line
            continue
        key, found, value = line.partition(sep.encode())
        if not found:
            raise CliError(f"line has no key separator {sep!r}: {line[:60]!r}")
        yield key, value


def cmd_produce(args: argparse.Namespace) -> int:
    options = ProduceOptions(args.partition, args.compression, args.partitioner,
                             args.partitions, args.acks)
    backend = _backend(args)
    try:
        sent = backend.produce(args.topic, _stdin_records(args.key_separator), options)
    finally:
        backend.close()
    if not args.quiet:
        print(f"produced {sent} record(s) to {args.topic!r}", file=sys.stderr)
    return 0


# --- consume -------------------------------------------------------------------------------------


def make_formatter(fmt: str) -> Callable[[Message], bytes]:
    """kcat's -f tokens: %t topic, %p partition, %o offset, %k key, %s value, %T timestamp,
    %K / %S key / value size, %h headers; \\n and \\t escapes."""
    pieces = _FORMAT_TOKEN.split(fmt)
    tokens = _FORMAT_TOKEN.findall(fmt)

    fields: dict[str, Callable[[Message], bytes]] = {
        "%t": lambda m: m.topic.encode(),
        "%p": lambda m: str(m.partition).encode(),
        "%o": lambda m: str(m.offset).encode(),
        "%k": lambda m: m.key or b"",
        "%s": lambda m: m.value or b"",
        "%K": lambda m: str(-1 if m.key is None else len(m.key)).encode(),
        "%S": lambda m: str(-1 if m.value is None else len(m.value)).encode(),
        "%T": lambda m: str(m.timestamp).encode(),
        "%h": lambda m: b",".join(k.encode() + b"=" + (v or b"") for k, v in m.headers),
        "%%": lambda m: b"%",
        "\\n": lambda m: b"\n",
        "\\t": lambda m: b"\t",
    }
    getters = [fields[token] for token in tokens]

    def render(m: Message) -> bytes:
        out = [pieces[0].encode()]
        for get, piece in zip(getters, pieces[1:], strict=True):
            out.append(get(m))
            out.append(piece.encode())
        return b"".join(out)

    return render


def cmd_consume(args: argparse.Namespace) -> int:
    render = make_formatter(args.format)
    out = sys.stdout.buffer
    seen = 0
    options = ConsumeOptions(args.group, args.from_beginning, args.exit_at_end, args.max_messages)
    backend = _backend(args)
    try:
        if args.max_messages != 0:
            for message in backend.consume(args.topic, options):
                out.write(render(message) + b"\n")
                out.flush()
                seen += 1
                if seen == args.max_messages:
                    break
    finally:
        backend.close()
    if not args.quiet:
        print(f"consumed {seen} record(s)", file=sys.stderr)
    return 0


# --- demo -----------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from .examples.orders import run_demo

    return run_demo(args.data_dir or DEFAULT_DATA_DIR, rate=args.rate, orders=args.orders,
                    seed=args.seed)


def cmd_example(args: argparse.Namespace) -> int:
    from .examples import orders

    data_dir = args.data_dir or DEFAULT_DATA_DIR
    if args.role == "producer":
        return orders.run_producer(data_dir, rate=args.rate, count=args.orders, seed=args.seed)
    return orders.run_consumer(data_dir, group=args.group)


# --- serve ---------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    return serve_broker(load_broker_config(args))


# --- wiring ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minikafka", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"minikafka {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=None,
                        help="work on this data directory in-process (env MINIKAFKA_DATA_DIR; "
                        f"default: {DEFAULT_DATA_DIR})")
    common.add_argument("-b", "--bootstrap-server", default=os.environ.get(BOOTSTRAP_ENV),
                        metavar="HOST:PORT", help="work against this Kafka-compatible broker "
                        f"instead (env {BOOTSTRAP_ENV})")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")

    topics = sub.add_parser("topics", help="create, list, describe, delete topics")
    actions = topics.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", parents=[common], help="create a topic")
    create.add_argument("name")
    create.add_argument("--partitions", type=int, default=1)
    create.add_argument("--config", action="append", default=[], metavar="NAME=VALUE",
                        help="topic config such as retention.ms=60000 (repeatable)")
    actions.add_parser("list", parents=[common], help="list topics")
    describe = actions.add_parser("describe", parents=[common], help="partitions and offsets")
    describe.add_argument("name", nargs="?")
    delete = actions.add_parser("delete", parents=[common], help="delete a topic")
    delete.add_argument("name")
    topics.set_defaults(func=cmd_topics)

    produce = sub.add_parser("produce", parents=[common], help="one record per stdin line")
    produce.add_argument("topic")
    produce.add_argument("-K", "--key-separator", help="split each line into KEY SEP VALUE")
    produce.add_argument("-p", "--partition", type=int, help="write to this partition only")
    produce.add_argument("-z", "--compression", default=None,
                         choices=["none", "gzip", "snappy", "lz4", "zstd"])
    produce.add_argument("--partitioner", default="murmur2", choices=["murmur2", "crc32"],
                         help="murmur2 = Java client default, crc32 = librdkafka default")
    produce.add_argument("--acks", default="all", choices=["0", "1", "all"],
                         help="over the wire: acknowledgements to wait for (default: all)")
    produce.add_argument("--partitions", type=int, default=1,
                         help="partitions if the topic is auto-created (default: %(default)s)")
    produce.set_defaults(func=cmd_produce)

    consume = sub.add_parser("consume", parents=[common], help="print records")
    consume.add_argument("topic")
    consume.add_argument("-G", "--group", help="consume as a member of this group, committing")
    consume.add_argument("--from-beginning", action="store_true",
                         help="start at the log start when nothing is committed")
    consume.add_argument("-e", "--exit-at-end", action="store_true",
                         help="exit once every partition is read to its end")
    consume.add_argument("-c", "--max-messages", type=int, help="exit after N records")
    consume.add_argument("-f", "--format", default="%s",
                         help="kcat-style: %%t %%p %%o %%k %%s %%T %%K %%S %%h (default: %%s)")
    consume.set_defaults(func=cmd_consume)

    demo = sub.add_parser("demo", parents=[common], help="the course exercise: orders produced "
                          "and consumed in parallel")
    demo.add_argument("--rate", type=float, default=5.0, help="orders per second")
    demo.add_argument("--orders", type=int, default=None, help="stop after N orders")
    demo.add_argument("--seed", type=int, default=42)
    demo.set_defaults(func=cmd_demo)

    example = sub.add_parser("example", parents=[common],
                             help="one side of the course exercise")
    example.add_argument("role", choices=["producer", "consumer"])
    example.add_argument("--rate", type=float, default=5.0)
    example.add_argument("--orders", type=int, default=None)
    example.add_argument("--seed", type=int, default=42)
    example.add_argument("--group", default="order-printer")
    example.set_defaults(func=cmd_example)

    serve = sub.add_parser("serve", help="run a Kafka-compatible broker over the data directory")
    add_broker_arguments(serve)
    serve.set_defaults(func=cmd_serve)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "max_messages", None) is not None and args.max_messages < 0:
        parser.error("--max-messages must be >= 0")
    if getattr(args, "partitions", 1) < 1:
        print(f"minikafka: error: --partitions must be at least 1, got {args.partitions}",
              file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (KafkaError, CliError, ValueError) as exc:
        print(f"minikafka: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"minikafka: error: {exc.strerror or exc}"
              + (f": {exc.filename}" if exc.filename else ""), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
