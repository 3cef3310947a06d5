"""Broker settings: defaults, then a TOML config file, then `MINIKAFKA_*` variables, then flags.

Each setting is declared once (a dataclass field with its help text); the command-line flags,
the environment variable names and the config-file keys are all derived from it.
"""

from __future__ import annotations

import argparse
import functools
import os
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

from .listeners import (
    DEFAULT_PROTOCOL_MAP,
    Listener,
    check_listeners,
    client_address,
    parse_listeners,
    parse_protocol_map,
)
from .scram import DEFAULT_MECHANISMS, check_mechanisms
from .tls import CLIENT_AUTH

ENV_PREFIX = "MINIKAFKA_"
# authorizer.class.name values: none, or the ACL authorizer under the names Kafka gives it, so a
# Kafka server.properties line carries over.
AUTHORIZERS = {"", "StandardAuthorizer", "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
               "kafka.security.authorizer.AclAuthorizer"}
MiB = 1024 * 1024


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    data_dir: str = _setting("data", "directory holding the topics' logs")
    node_id: int = _setting(
        1, "this broker's id (Kafka's node.id; 1 as in Kafka's single-node quickstart) in "
        "Metadata, FindCoordinator, DescribeCluster and replica assignments")
    host: str = _setting("127.0.0.1", "address to listen on")
    port: int = _setting(9092, "TCP port to listen on (0 picks a free one)")
    ui: bool = _setting(True, "serve the web console and Prometheus /metrics (--no-ui: neither)")
    ui_port: int = _setting(8080, "TCP port of the web console and /metrics, on the broker's "
                            "host (0 picks a free one)")
    ui_auth: str = _setting(
        "auto", "who may use the web console and /metrics: 'auto' (a login with a SCRAM user "
        "when --host is not loopback), 'login' (always) or 'none' (never)")
    schema_registry: bool = _setting(
        True, "serve the schema registry, Confluent's REST API (--no-schema-registry: not)")
    schema_registry_port: int = _setting(8081, "TCP port of the schema registry, on the "
                                         "broker's host (0 picks a free one)")
    advertised_host: str | None = _setting(
        None, "host name clients are told to connect to (default: the listen address)")
    listeners: str | None = _setting(
        None, "Kafka's listeners, NAME://HOST:PORT,... (an empty HOST is every address): "
        "several addresses, each advertised on its own (default: one PLAINTEXT listener on "
        "--host and --port)")
    advertised_listeners: str | None = _setting(
        None, "Kafka's advertised.listeners, NAME://HOST:PORT,...: the address each listener's "
        "clients are told (default: the listener's own address)")
    listener_security_protocol_map: str = _setting(
        DEFAULT_PROTOCOL_MAP, "Kafka's listener.security.protocol.map, NAME:PROTOCOL,... "
        "(PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)")
    ssl_certfile: str | None = _setting(
        None, "PEM certificate chain of SSL and SASL_SSL listeners (Kafka's ssl.keystore)")
    ssl_keyfile: str | None = _setting(
        None, "PEM private key of that certificate (default: in ssl_certfile)")
    ssl_key_password: str | None = _setting(None, "password of ssl_keyfile, if encrypted")
    ssl_cafile: str | None = _setting(
        None, "PEM CA certificates that client certificates are checked against (Kafka's "
        "ssl.truststore; default: the system's)")
    ssl_client_auth: str = _setting(
        "none", "Kafka's ssl.client.auth: none, requested or required (mTLS; the principal is "
        "the certificate's subject)")
    sasl_enabled_mechanisms: str = _setting(
        DEFAULT_MECHANISMS, "SASL mechanisms served on SASL_* listeners (Kafka's "
        "sasl.enabled.mechanisms)")
    sasl_server_max_receive_size: int = _setting(
        524_288, "largest request accepted on a SASL listener before the client has "
        "authenticated; a connection announcing a bigger one is closed")
    connections_max_reauth_ms: int = _setting(
        0, "SASL sessions last this long, then clients re-authenticate (KIP-368) or are "
        "disconnected (0: for good)")
    authorizer_class_name: str = _setting(
        "", "Kafka's authorizer.class.name: empty (the default, as in Kafka) authorizes "
        "everything and refuses the ACL APIs; StandardAuthorizer (or Kafka's full class names "
        "of it and of AclAuthorizer) checks every request against the ACLs")
    super_users: str = _setting(
        "", "Kafka's super.users: principals allowed everything, separated by semicolons "
        "(e.g. User:admin;User:broker)")
    allow_everyone_if_no_acl_found: bool = _setting(
        False, "Kafka's allow.everyone.if.no.acl.found: a resource no ACL names is open to all "
        "(default false: closed)")
    flush: str = _setting(
        "never", "when to fsync: 'always' (acks=all waits, group commit), an interval like "
        "'100ms', or 'never' (the OS decides; survives a process crash)")
    auto_create_topics: bool = _setting(
        True, "create unknown topics on Metadata requests (Produce never creates "
        "topics, as in Kafka)")
    num_partitions: int = _setting(1, "partitions of auto-created topics and of CreateTopics "
                                   "requests that leave the count to the broker")
    max_in_flight: int = _setting(64, "requests read ahead per connection (pipelining)")
    max_incremental_fetch_session_cache_slots: int = _setting(
        1000, "incremental fetch sessions (KIP-227) kept for consumers; past it a new one "
        "evicts a stale or smaller one, or the consumer fetches without a session")
    # Bounds on what clients can make the broker hold (Kafka's names and defaults where Kafka
    # has the setting; max.topics and max.partitions are ours).
    socket_request_max_bytes: int = _setting(
        100 * MiB, "largest request accepted; a connection announcing a bigger one is closed")
    queued_max_request_bytes: int = _setting(
        100 * MiB, "request bytes received and not yet answered, all connections together; "
        "past it reading pauses until requests are answered (-1: unbounded)")
    max_connections: int = _setting(
        10_000, "open client connections; a new one past it is closed at once")
    max_connections_per_ip: int = _setting(
        1_000, "open client connections from one address; a new one past it is closed at once")
    connections_max_idle_ms: int = _setting(
        600_000, "a connection with no request or answer for this long is closed")
    max_topics: int = _setting(
        10_000, "topics the broker holds; creating more is refused (POLICY_VIOLATION)")
    max_partitions: int = _setting(
        100_000, "partitions the broker holds, all topics together; creating more is refused "
        "(POLICY_VIOLATION)")
    quota_window_num: int = _setting(
        11, "samples a client quota's rate is measured over (Kafka's quota.window.num)")
    quota_window_size_seconds: int = _setting(
        1, "length of each client quota sample (Kafka's quota.window.size.seconds)")
    log_level: str = _setting("INFO", "logging level")
    # Consumer groups: Kafka's broker configs of the same names (and defaults).
    group_initial_rebalance_delay_ms: int = _setting(
        3000, "how long a new group waits for more members before its first generation")
    group_min_session_timeout_ms: int = _setting(6000, "smallest session timeout a member may ask")
    group_max_session_timeout_ms: int = _setting(1_800_000,
                                                 "largest session timeout a member may ask")
    offsets_retention_minutes: int = _setting(
        10080, "committed offsets of a group without members are dropped this long after their "
        "commit (and after the group was last seen with members)")
    offsets_retention_check_interval_ms: int = _setting(
        600_000, "how often expired committed offsets are looked for")
    producer_id_expiration_ms: int = _setting(
        86_400_000, "an idempotent producer whose last batch is this old is forgotten (Kafka's "
        "producer.id.expiration.ms)")
    # Transactions: Kafka's broker configs of the same names (and defaults).
    transaction_max_timeout_ms: int = _setting(
        900_000, "largest transaction.timeout.ms a transactional producer may ask "
        "(InitProducerId answers INVALID_TRANSACTION_TIMEOUT past it)")
    transactional_id_expiration_ms: int = _setting(
        604_800_000, "a transactional id with no transaction for this long is forgotten")
    transaction_abort_timed_out_transaction_cleanup_interval_ms: int = _setting(
        10_000, "how often transactions past their timeout are aborted (and markers a full "
        "disk refused are written again)")
    transaction_remove_expired_transaction_cleanup_interval_ms: int = _setting(
        3_600_000, "how often transactional ids past transactional.id.expiration.ms are removed")
    log_retention_check_interval_ms: int = _setting(
        300_000, "how often logs that stopped growing are checked against retention.ms and "
        "retention.bytes (growing logs are checked at every segment roll)")
    # The log cleaner: Kafka's broker configs of the same names (and defaults); the last three
    # are the defaults of topic configs (topic_defaults).
    log_cleaner_enable: bool = _setting(
        True, "run the log cleaner, which compacts topics whose cleanup.policy includes compact")
    log_cleaner_io_max_bytes_per_second: float = _setting(
        1.7976931348623157e308, "bytes per second the cleaner reads and writes, at most")
    log_cleaner_backoff_ms: int = _setting(
        15_000, "how long the cleaner sleeps when no partition is due for cleaning")
    log_cleaner_dedupe_buffer_size: int = _setting(
        128 * MiB, "memory for the cleaner's key map (24 bytes a key); a pass cleans as far as "
        "the keys fit")
    log_cleaner_min_cleanable_ratio: float = _setting(
        0.5, "share of a log that must be dirty (not yet compacted) for it to be cleaned "
        "(min.cleanable.dirty.ratio's default)")
    log_cleaner_delete_retention_ms: int = _setting(
        86_400_000, "how long tombstones stay after they were first cleaned "
        "(delete.retention.ms's default)")
    log_cleaner_min_compaction_lag_ms: int = _setting(
        0, "how long a record stays uncompacted at least (min.compaction.lag.ms's default)")

    def __post_init__(self) -> None:
        if self.node_id < 0:
            raise ValueError(f"node_id must be at least 0, got {self.node_id}")
        if self.listeners is not None and self.advertised_host is not None:
            raise ValueError("advertised_host is for the default listener: with listeners, "
                             "give advertised_listeners")
        check_listeners(self.bind_listeners, self._advertised_listeners(),
                        parse_protocol_map(self.listener_security_protocol_map))
        check_mechanisms(self.sasl_enabled_mechanisms)
        if self.ssl_client_auth not in CLIENT_AUTH:
            raise ValueError(f"ssl_client_auth must be one of {', '.join(CLIENT_AUTH)}, got "
                             f"{self.ssl_client_auth!r}")
        if self.ui_auth not in ("auto", "login", "none"):
            raise ValueError(f"ui_auth must be auto, login or none, got {self.ui_auth!r}")
        if self.authorizer_class_name not in AUTHORIZERS:
            raise ValueError("authorizer_class_name must be empty or one of "
                             f"{', '.join(sorted(filter(None, AUTHORIZERS)))}, got "
                             f"{self.authorizer_class_name!r}")
        tls = [listener.name for listener in self.bind_listeners
               if self.security_protocol(listener.name).endswith("SSL")]
        if tls and not self.ssl_certfile:
            raise ValueError(f"listener {tls[0]} uses TLS: give ssl_certfile (and ssl_keyfile)")

    def topic_defaults(self) -> dict[str, Any]:
        """The topic configs this broker sets for every topic that does not set its own, by
        topic config name (TopicConfig.broker_defaults): the settings named after a topic
        config's broker synonym, where they differ from Kafka's default. A value the topic
        config would refuse is a ValueError naming the broker setting."""
        from ..errors import InvalidConfigError
        from ..log.config import TOPIC_CONFIGS  # the log package: not for the CLI's start

        values = {}
        for key in TOPIC_CONFIGS.values():
            value = getattr(self, key.broker_name.replace(".", "_"), key.default) \
                if key.broker_name else key.default
            if value == key.default:
                continue
            try:
                values[key.name] = key.parse(value)
            except InvalidConfigError as exc:
                raise ValueError(f"{key.broker_name}: {exc}") from None
        return values

    def security_protocol(self, name: str) -> str:
        """PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL: how listener `name` is secured."""
        return parse_protocol_map(self.listener_security_protocol_map)[name]

    @property
    def bind_listeners(self) -> list[Listener]:
        """Where the broker listens (ports as bound, once started)."""
        return _bound(self.listeners, self.host, self.port)

    def _advertised_listeners(self) -> list[Listener]:
        return _told(self.advertised_listeners)

    def advertised_for(self, name: str) -> tuple[str, int]:
        """The address told to clients of listener `name` (Metadata and FindCoordinator ask on
        every request: worked out once per config)."""
        return _advertised_address(self.listeners, self.advertised_listeners,
                                   self.advertised_host, self.host, self.port, name)

    @property
    def advertised(self) -> tuple[str, int]:
        """The first listener's advertised address (for the console and embedded clients)."""
        return self.advertised_for(self.bind_listeners[0].name)

    def with_values(self, values: Mapping[str, Any], source: str) -> BrokerConfig:
        """A copy with `values` (strings or native) applied; unknown keys raise ValueError."""
        known = {f.name: f for f in fields(self)}
        changes = {}
        for raw_key, value in values.items():
            key = raw_key.replace("-", "_").replace(".", "_")
            if key not in known:
                raise ValueError(f"{source}: unknown setting {raw_key!r}")
            changes[key] = _convert(key, value, _type_of(self, key), source)
        return replace(self, **changes)


def _bound(listeners: str | None, host: str, port: int) -> list[Listener]:
    """The `listeners` setting, or the default listener on `host` and `port`."""
    if listeners is None:
        return [Listener("PLAINTEXT", host, port)]
    return parse_listeners(listeners, "listeners")


def _told(advertised_listeners: str | None) -> list[Listener]:
    return [] if advertised_listeners is None else parse_listeners(advertised_listeners,
                                                                   "advertised_listeners")


@functools.lru_cache(maxsize=64)
def _advertised_address(listeners: str | None, advertised_listeners: str | None,
                        advertised_host: str | None, host: str, port: int, name: str
                        ) -> tuple[str, int]:
    """`BrokerConfig.advertised_for`, from the settings it depends on."""
    bound = next(listener for listener in _bound(listeners, host, port) if listener.name == name)
    advertised = next((listener for listener in _told(advertised_listeners)
                       if listener.name == name), None)
    if advertised is None and advertised_host:
        advertised = Listener(name, advertised_host, bound.port)
    return client_address(bound, advertised)


def _type_of(config: BrokerConfig, key: str) -> type:
    default = next(f.default for f in fields(config) if f.name == key)
    return type(default) if default is not None and default is not MISSING else str


def _convert(key: str, value: Any, kind: type, source: str) -> Any:
    if not isinstance(value, str) or kind is str:
        return value
    if kind is bool:
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{source}: {key} must be true or false, got {value!r}")
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{source}: {key} must be {kind.__name__}, got {value!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting (defaults shown in --help) plus --config."""
    parser.add_argument("--config", metavar="FILE",
                        help=f"TOML file of settings (keys as below, e.g. port = 9092); "
                             f"{ENV_PREFIX}<SETTING> variables override it, flags override both")
    defaults = BrokerConfig()
    for f in fields(BrokerConfig):
        flag = "--" + f.name.replace("_", "-")
        env = ENV_PREFIX + f.name.upper()
        default = getattr(defaults, f.name)
        shown = "" if default is None else f"default: {default}; "
        help_text = f"{f.metadata['help']} ({shown}env {env})"
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, default=None,
                                action=argparse.BooleanOptionalAction, help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(),
                                help=help_text)


def load_config(args: argparse.Namespace | None = None,
                environ: Mapping[str, str] | None = None) -> BrokerConfig:
    """Merge defaults, the config file, the environment and the flags, in that order."""
    environ = os.environ if environ is None else environ
    config = BrokerConfig()
    config_file = getattr(args, "config", None) or environ.get(ENV_PREFIX + "CONFIG")
    if config_file:
        with open(config_file, "rb") as fh:
            data = tomllib.load(fh)
        config = config.with_values(data.get("broker", data), str(config_file))
    names = [f.name for f in fields(BrokerConfig)]
    env_values = {n: environ[ENV_PREFIX + n.upper()] for n in names
                  if ENV_PREFIX + n.upper() in environ}
    config = config.with_values(env_values, "environment")
    if args is not None:
        flags = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
        config = config.with_values(flags, "command line")
    return config
