"""`minikafka`: topics, produce, consume, groups, quotas, transactions, cluster, serve, example,
shop, demo.

Errors are one line on stderr and a non-zero exit; a traceback is a bug.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .. import __version__
from ..broker import add_arguments as add_broker_arguments
from ..broker import load_config as load_broker_config
from ..errors import KafkaError
from ..extras import MissingExtra, require
from ..registry.formats import to_json
from ..shop.cli import add_commands as add_shop_commands
from ..shop.settings import DEFAULT_REGISTRY, REGISTRY_ENV, default_registry
from .acls import add_acls_parser
from .backends import (
    BOOTSTRAP_ENV,
    DEFAULT_DATA_DIR,
    ConsumeOptions,
    EmbeddedBackend,
    ProduceOptions,
    RawRecord,
    StartAt,
    TimeQuery,
    TopicInfo,
    backend_for,
    connection_arguments,
    parse_pairs,
)
from .decoding import FORMATS
from .groups import add_groups_parser
from .kcat import Input, make_formatter, parse_delim, read_messages, split_key
from .quotas import add_quotas_parser
from .schemas import add_schemas_parser
from .transactions import add_transactions_parser
from .users import add_users_parser

if TYPE_CHECKING:
    from ..client import Message


class CliError(Exception):
    """A user mistake, reported as one line."""


# --- topics --------------------------------------------------------------------------------------


def _parse_configs(pairs: Sequence[str]) -> dict[str, str]:
    return parse_pairs(pairs, "--config")


def print_json(data: object) -> None:
    """--json: one JSON document on stdout."""
    print(json.dumps(data, ensure_ascii=False))


def cmd_topics(args: argparse.Namespace) -> int:
    backend = backend_for(args, writes=args.action == "create")
    try:
        if args.action == "create":
            count = backend.create_topic(args.name, args.partitions, _parse_configs(args.config))
            print(f"created topic {args.name!r} with {count} partition(s)")
        elif args.action == "delete":
            backend.delete_topic(args.name)
            print(f"deleted topic {args.name!r}")
        elif args.action == "list":
            names = backend.list_topics()
            if args.json:
                print_json(names)
            else:
                for topic in names:
                    print(topic)
        elif args.action == "describe":
            infos = [backend.describe_topic(topic)
                     for topic in ([args.name] if args.name else backend.list_topics())]
            if args.json:
                print_json([dataclasses.asdict(info) for info in infos])
            else:
                for info in infos:
                    _print_topic(info)
        elif args.action == "alter":
            if args.partitions is not None:
                backend.add_partitions(args.name, args.partitions)
            if args.config or args.delete_config:
                backend.alter_topic(args.name, _parse_configs(args.config), args.delete_config)
            if args.partitions is None and not (args.config or args.delete_config):
                raise CliError("topics alter needs --partitions, --config or --delete-config")
            print(f"altered topic {args.name!r}")
        elif args.action == "compact":
            if not isinstance(backend, EmbeddedBackend):
                raise CliError("a broker compacts its topics itself (log.cleaner.enable); "
                               "topics compact works on a --data-dir")
            removed, before, after = backend.compact(args.name)
            print(f"compacted topic {args.name!r}: {removed} record(s) removed, {before} bytes "
                  f"now {after}")
        elif args.action == "delete-records":
            for partition, start in backend.delete_records(args.name, args.partition,
                                                           args.before):
                print(f"{args.name} [{partition}] log start offset {start}")
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


def _records(args: argparse.Namespace, stream: Input, progress: Callable[[int], None]
             ) -> Iterator[RawRecord]:
    """kcat's producer input: messages split on -D, each KEY<-K>VALUE or a value alone."""
    key_delim = None if args.key_separator is None else parse_delim(args.key_separator)
    delim = parse_delim(args.delimiter)
    if not delim:  # checked before anything is read or created
        raise CliError("Message delimiter -D must not be empty when producing")
    return ((line, *split_key(message, key_delim, args.null))
            for line, message in read_messages(stream, delim, progress))


def _parse_headers(pairs: Sequence[str]) -> list[tuple[str, bytes]]:
    return [(name, value.encode()) for name, value in parse_pairs(pairs, "-H").items()]


def cmd_produce(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress, TransferSpeedColumn

    topic = _one_topic(args)
    options = ProduceOptions(args.partition, args.compression, args.partitioner,
                             args.partitions, args.acks, _parse_headers(args.header))
    show = not args.quiet and sys.stderr.isatty()
    with contextlib.ExitStack() as stack:
        stream = stack.enter_context(open(args.file or sys.stdin.fileno(), "rb",
                                          closefd=bool(args.file)))
        total = os.fstat(stream.fileno()).st_size if args.file else None
        progress = Progress(*Progress.get_default_columns(), TransferSpeedColumn(),
                            console=Console(stderr=True), disable=not show, transient=True)
        task = progress.add_task(f"producing to {topic}", total=total)
        stack.enter_context(progress)
        records = _records(args, stream, lambda n: progress.advance(task, n))
        backend = backend_for(args, writes=True)
        stack.callback(backend.close)
        sent = backend.produce(topic, records, options)
    if not args.quiet:
        print(f"produced {sent} record(s) to {topic!r}", file=sys.stderr)
    return 0


# --- consume -------------------------------------------------------------------------------------


def _json_line(m: Message, decoded: dict[str, object]) -> bytes:
    """One record with its metadata; bytes shown as text (undecodable bytes escaped), a key or
    value decoded through the schema registry as its JSON data."""

    def text(data: bytes | None) -> str | None:
        return None if data is None else data.decode(errors="backslashreplace")

    return to_json({
        "topic": m.topic, "partition": m.partition, "offset": m.offset,
        "timestamp": m.timestamp, "key": decoded.get("key", text(m.key)),
        "value": decoded.get("value", text(m.value)),
        "headers": {k: text(v) for k, v in m.headers},
    }).encode()


def _start_at(args: argparse.Namespace) -> StartAt | None:
    chosen = [flag for flag, value in (("--from-beginning", args.from_beginning),
                                       ("--offset", args.offset),
                                       ("--from-time", args.from_time)) if value]
    if len(chosen) > 1:
        raise CliError(f"choose one of {', '.join(chosen)}")
    if args.group and (args.offset or args.from_time) and args.partition is None:
        raise CliError("a group starts at its committed offsets: --offset and --from-time "
                       "need explicit partitions (-p) or no group")
    if args.from_beginning:
        return StartAt("beginning")
    if args.offset:
        return StartAt.parse(args.offset)
    if args.from_time:
        return StartAt("time", _parse_time(args.from_time))
    return None


def _parse_time(text: str) -> int:
    """Milliseconds since the epoch, or an ISO 8601 date/time (UTC unless it says otherwise)."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--from-time takes epoch milliseconds or an ISO date, not {text!r}"
                       ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _renderer(args: argparse.Namespace) -> Callable[[Message], bytes]:
    """--json (one object, then the -D delimiter), else kcat's -f or its default format; keys
    and values in --key-format / --value-format decoded through the registry first."""
    decode: Callable[[Message], tuple[Message, dict[str, object]]] = lambda m: (m, {})  # noqa: E731
    if args.key_format or args.value_format:
        require("registry", "consume --key-format/--value-format")
        from .decoding import RecordDecoder

        decode = RecordDecoder(args.registry, args.key_format, args.value_format).decode
    if args.json:
        end = parse_delim(args.delimiter)
        return lambda m: _json_line(*decode(m)) + end
    render = make_formatter(args.format, key_delim=args.key_separator, delim=args.delimiter,
                            null=args.null)
    return lambda m: render(decode(m)[0])


def cmd_consume(args: argparse.Namespace) -> int:
    if args.query_offsets:
        return query_offsets(args)
    topics = _topics(args)
    render = _renderer(args)
    out = sys.stdout.buffer
    seen = 0
    options = ConsumeOptions(args.group, _start_at(args), args.partition, args.exit_at_end)
    backend = backend_for(args)
    try:
        if args.max_messages != 0:
            for message in backend.consume(topics, options):
                out.write(render(message))
                out.flush()
                seen += 1
                if seen == args.max_messages:
                    break
    finally:
        backend.close()
    if not args.quiet:
        print(f"consumed {seen} record(s)", file=sys.stderr)
    return 0


def query_offsets(args: argparse.Namespace) -> int:
    """kcat -Q: the first offset at or after each TOPIC:PARTITION:TIMESTAMP (-1 for none;
    timestamp -1 asks for the log end, -2 for the log start), sorted as kcat prints them."""
    queries: list[TimeQuery] = []
    for spec in args.topic_flag:
        topic, _, rest = spec.rpartition(":")
        topic, _, partition = topic.rpartition(":")
        try:
            queries.append((topic, int(partition), int(rest)))
        except ValueError:
            raise CliError(f"-t: expected \"topic:partition:timestamp\", got {spec!r}") from None
    if not queries or args.topics:
        raise CliError("-Q takes -t TOPIC:PARTITION:TIMESTAMP (repeatable), and no other topic")
    backend = backend_for(args)
    try:
        found = backend.query_offsets(queries)
    finally:
        backend.close()
    for (topic, partition, _), offset in sorted(zip(queries, found, strict=True),
                                                key=lambda item: item[0][:2]):
        print(f"{topic} [{partition}] offset {offset}")
    return 0


def _topics(args: argparse.Namespace) -> list[str]:
    """consume's topics: positional (kcat -G style, ^regex allowed) and -t."""
    topics = [*args.topics, *args.topic_flag]
    if not topics:
        raise CliError("which topic? give it as an argument or with -t")
    return topics


def _one_topic(args: argparse.Namespace) -> str:
    """produce's topic, given as kcat's -t or positionally."""
    if args.topic and args.topic_flag and args.topic != args.topic_flag:
        raise CliError(f"two topics given: {args.topic!r} and -t {args.topic_flag!r}")
    topic = args.topic or args.topic_flag
    if not topic:
        raise CliError("which topic? give it as an argument or with -t")
    return topic


# --- cluster -------------------------------------------------------------------------------------


def cmd_cluster(args: argparse.Namespace) -> int:
    backend = backend_for(args)
    try:
        if args.json:
            print_json(backend.describe_cluster() if args.action == "describe" else
                       backend.api_versions())
        elif args.action == "describe":
            for name, value in backend.describe_cluster().items():
                print(f"{name}: {value}")
        else:
            for name, (low, high) in backend.api_versions().items():
                print(f"{name} {low}-{high}")
    finally:
        backend.close()
    return 0


# --- example --------------------------------------------------------------------------------------


def cmd_example(args: argparse.Namespace) -> int:
    """The course exercise (embedded, on --data-dir) and the course's Kafka example (over the
    wire, on --bootstrap-server)."""
    from ..examples import kafka_course, orders

    if args.role.startswith("kafka-"):
        if not args.bootstrap_server:
            raise CliError(f"{args.role} needs --bootstrap-server (or {BOOTSTRAP_ENV})")
        if args.role == "kafka-producer":
            return kafka_course.run_producer(args.bootstrap_server, args.topic)
        return kafka_course.run_consumer(args.bootstrap_server, args.topic,
                                         args.group or "loggers", args.max_messages)
    data_dir = args.data_dir or DEFAULT_DATA_DIR
    if args.role == "demo":
        return orders.run_demo(data_dir, rate=args.rate, orders=args.orders, seed=args.seed)
    if args.role == "producer":
        return orders.run_producer(data_dir, rate=args.rate, count=args.orders, seed=args.seed)
    return orders.run_consumer(data_dir, group=args.group or "order-printer")


# --- serve ---------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    config = load_broker_config(args)
    if config.ui:
        require("console", "serve", hint=" (or --no-ui: no console, no /metrics)")
    if config.schema_registry:
        require("registry", "serve", hint=" (or --no-schema-registry)")
    from ..serve import serve

    return serve(config)


def cmd_console(args: argparse.Namespace) -> int:
    """The web console of any Kafka-compatible cluster (inside `serve` it is built in)."""
    require("console", "console")
    if not args.bootstrap_server:
        raise ValueError("minikafka console needs -b HOST:PORT (a Kafka-compatible cluster); "
                         "minikafka serve has its own console built in")
    from ..console.remote import serve

    return serve(args.bootstrap_server, args.host, args.port,
                 parse_pairs(args.client_config, "-X"))


# --- wiring ---------------------------------------------------------------------------------------


def _add_json_argument(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _add_delimiter_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """kcat's -K, -D and -Z, the same for produce and consume (escapes \\n \\t \\xNN)."""
    parser.add_argument("-K", "--key-separator", metavar="DELIM", help=what)
    parser.add_argument("-D", "--delimiter", default="\\n", metavar="DELIM",
                        help="the message delimiter (default: \\n)")
    parser.add_argument("-Z", "--null", action="store_true",
                        help="an empty key or value is NULL (kcat's -Z)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minikafka", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"minikafka {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False, parents=[connection_arguments()])
    common.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")

    topics = sub.add_parser("topics", help="create, list, describe, alter, delete topics")
    actions = topics.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", parents=[common], help="create a topic")
    create.add_argument("name")
    create.add_argument("--partitions", type=int, default=1)
    create.add_argument("--config", action="append", default=[], metavar="NAME=VALUE",
                        help="topic config such as retention.ms=60000 (repeatable)")
    _add_json_argument(actions.add_parser("list", parents=[common], help="list topics"))
    describe = _add_json_argument(actions.add_parser("describe", parents=[common],
                                                     help="partitions and offsets"))
    describe.add_argument("name", nargs="?")
    delete = actions.add_parser("delete", parents=[common], help="delete a topic")
    delete.add_argument("name")
    alter = actions.add_parser("alter", parents=[common],
                               help="change configs or add partitions")
    alter.add_argument("name")
    alter.add_argument("--partitions", type=int, help="grow the topic to N partitions")
    alter.add_argument("--config", action="append", default=[], metavar="NAME=VALUE",
                       help="set a topic config (repeatable)")
    alter.add_argument("--delete-config", action="append", default=[], metavar="NAME",
                       help="return a config to its default (repeatable)")
    compact = actions.add_parser("compact", parents=[common],
                                 help="run the log cleaner over a compacted topic now "
                                 "(in-process; a broker runs it itself)")
    compact.add_argument("name")
    purge = actions.add_parser("delete-records", parents=[common],
                               help="delete a partition's records before an offset")
    purge.add_argument("name")
    purge.add_argument("-p", "--partition", type=int, action="append",
                       help="this partition (repeatable; default: all)")
    purge.add_argument("--before", type=int, required=True, metavar="OFFSET",
                       help="the new log start offset (-1: the log end)")
    topics.set_defaults(func=cmd_topics)

    cluster = sub.add_parser("cluster", help="describe the cluster or its API versions")
    cluster_actions = cluster.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add_json_argument(cluster_actions.add_parser("describe", parents=[common],
                                                  help="brokers, cluster id, size"))
    _add_json_argument(cluster_actions.add_parser("api-versions", parents=[common],
                                                  help="the API versions a broker serves"))
    cluster.set_defaults(func=cmd_cluster)

    produce = sub.add_parser("produce", parents=[common],
                             help="one record per line of stdin or a file")
    produce.add_argument("topic", nargs="?")
    produce.add_argument("-t", "--topic", dest="topic_flag", metavar="TOPIC",
                         help="the topic (kcat style; or give it positionally)")
    produce.add_argument("-l", "--file", help="read lines from this file instead of stdin")
    _add_delimiter_arguments(produce, "split each message into KEY DELIM VALUE (a message "
                             "without it: a null key)")
    produce.add_argument("-H", "--header", action="append", default=[], metavar="NAME=VALUE",
                         help="add this header to every record (repeatable)")
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
    consume.add_argument("topics", nargs="*", metavar="TOPIC",
                         help="topics to read; ^REGEX for every topic it matches")
    consume.add_argument("-t", "--topic", dest="topic_flag", action="append", default=[],
                         metavar="TOPIC", help="a topic (kcat style; repeatable); with -Q: "
                         "TOPIC:PARTITION:TIMESTAMP")
    consume.add_argument("-Q", "--query-offsets", action="store_true",
                         help="print the offset of each -t TOPIC:PARTITION:TIMESTAMP (kcat -Q)")
    _add_delimiter_arguments(consume, "print KEY DELIM VALUE (kcat's default format with -K)")
    consume.add_argument("-G", "--group", help="consume as a member of this group, committing")
    consume.add_argument("-p", "--partition", type=int, help="read only this partition")
    consume.add_argument("--from-beginning", action="store_true",
                         help="start at the log start (for a group: when nothing is committed)")
    consume.add_argument("-o", "--offset", metavar="beginning|end|N|-N",
                         help="start here: N absolute, -N that many before the end")
    consume.add_argument("--from-time", metavar="ISO|MS",
                         help="start at the first record at or after this time")
    consume.add_argument("--json", action="store_true",
                         help="one JSON object per record, with its metadata")
    consume.add_argument("-e", "--exit-at-end", action="store_true",
                         help="exit once every partition is read to its end")
    consume.add_argument("-c", "--max-messages", type=int, help="exit after N records")
    consume.add_argument("-f", "--format", help="kcat's: %%t %%p %%o %%k %%s %%T %%K %%S %%R %%h "
                         "%%%%, \\n \\r \\t \\xNN \\NNN; printed as given, no newline added "
                         "(default: %%s then -D)")
    for side in ("key", "value"):
        consume.add_argument(f"--{side}-format", choices=FORMATS,
                             help=f"decode {side}s in a schema registry's wire format and print "
                             "them as JSON (a record in no wire format is printed raw, with a "
                             "warning)")
    consume.add_argument("--registry", default=default_registry(), metavar="URL",
                         help=f"the schema registry for --key-format / --value-format (env "
                         f"{REGISTRY_ENV}; default: {DEFAULT_REGISTRY})")
    consume.set_defaults(func=cmd_consume)

    example = sub.add_parser("example", parents=[common],
                             help="the course exercise: demo (generator and printer side by "
                             "side), producer or consumer on --data-dir; kafka-producer / "
                             "kafka-consumer on --bootstrap-server")
    example.add_argument("role", choices=["demo", "producer", "consumer", "kafka-producer",
                                          "kafka-consumer"])
    example.add_argument("--rate", type=float, default=5.0)
    example.add_argument("--orders", type=int, default=None)
    example.add_argument("--seed", type=int, default=42)
    example.add_argument("--group", default=None,
                         help="consumer group (default: order-printer; kafka-consumer: loggers)")
    example.add_argument("--topic", default="course-orders",
                         help="kafka-*: the topic (default: %(default)s, 1 partition)")
    example.add_argument("-c", "--max-messages", type=int, default=None,
                         help="kafka-consumer: exit after N messages")
    example.set_defaults(func=cmd_example)

    add_groups_parser(sub)
    add_quotas_parser(sub)
    add_schemas_parser(sub)
    add_users_parser(sub)
    add_acls_parser(sub)
    add_transactions_parser(sub)
    add_shop_commands(sub)

    console = sub.add_parser("console", parents=[connection_arguments()],
                             help="serve the web console of any Kafka-compatible cluster (-b)")
    console.add_argument("--host", default="127.0.0.1", help="listen on (default: 127.0.0.1)")
    console.add_argument("--port", type=int, default=8080,
                         help="console port (default: 8080; 0: a free one, printed)")
    console.set_defaults(func=cmd_console)

    serve = sub.add_parser("serve", help="run a Kafka-compatible broker over the data directory")
    add_broker_arguments(serve)
    serve.set_defaults(func=cmd_serve)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "max_messages", None) is not None and args.max_messages < 0:
        parser.error("--max-messages must be >= 0")
    partitions = getattr(args, "partitions", None)
    if partitions is not None and partitions < 1:
        print(f"minikafka: error: --partitions must be at least 1, got {partitions}",
              file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (KafkaError, CliError, MissingExtra, ValueError) as exc:
        print(f"minikafka: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return _stdout_closed()
    except OSError as exc:
        print(f"minikafka: error: {exc.strerror or exc}"
              + (f": {exc.filename}" if exc.filename else ""), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _stdout_closed() -> int:
    """The reader went away (`... | head -1`): exit 0 quietly, as kcat and cat do. stdout now
    points at /dev/null so that the interpreter's final flush of what is buffered cannot fail
    again (the Python docs' note on SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0


if __name__ == "__main__":
    sys.exit(main())
