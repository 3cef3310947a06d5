"""DescribeConfigs (32), AlterConfigs (33), IncrementalAlterConfigs (44): topic configs.

Topic configs live in the log (Kafka's names and defaults); broker configs are read-only here
(they come from `minikafka serve`'s settings and cannot change while it runs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka.protocol.api_key import ApiKey

from ...errors import ErrorCode, InvalidConfigError, KafkaError
from ...log import TopicConfig
from ...log.config import TOPIC_CONFIGS, ConfigKey
from ...protocol.codec import RequestHeader, response_class
from .. import ops
from ..acls import CLUSTER_NAME, AclOperation, ResourceType
from ..context import Api, BrokerContext, authorize

TOPIC, BROKER = 2, 4  # ConfigResource.Type
SOURCE_TOPIC, SOURCE_STATIC_BROKER, SOURCE_DEFAULT = 1, 4, 5  # ConfigSource
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3  # IncrementalAlterConfigs operations


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    name: str
    value: str
    source: int
    type: int
    read_only: bool = False
    doc: str | None = None
    synonyms: tuple[tuple[str, str, int], ...] = ()  # (name, value, source), highest first


def topic_config_entries(config: TopicConfig) -> list[ConfigEntry]:
    """A topic's configs as DescribeConfigs and CreateTopics (v5+) report them; the synonyms are
    the topic's override, then the broker config it overrides: the broker's value if it sets
    one, and Kafka's default."""
    defaults = config.defaults()
    entries = []
    for name, value in config.as_kafka_configs().items():
        key = TOPIC_CONFIGS[name]
        synonyms = [] if name in defaults else [(name, value, SOURCE_TOPIC)]
        if key.broker_name:
            synonyms += _broker_synonyms(key, config.broker_defaults)
        source = synonyms[0][2] if synonyms else SOURCE_DEFAULT
        entries.append(ConfigEntry(name, value, source, key.type_code, doc=key.doc,
                                   synonyms=tuple(synonyms)))
    return entries


def broker_config_entries(ctx: BrokerContext) -> list[ConfigEntry]:
    c = ctx.config
    values = [
        ("node.id", str(ctx.node_id), 3),
        ("broker.id", str(ctx.node_id), 3),
        ("log.dirs", c.data_dir, 2),
        ("num.partitions", str(c.num_partitions), 3),
        ("auto.create.topics.enable", str(c.auto_create_topics).lower(), 1),
        ("socket.request.max.bytes", str(c.socket_request_max_bytes), 3),
        ("queued.max.request.bytes", str(c.queued_max_request_bytes), 5),
        ("max.connections", str(c.max_connections), 3),
        ("max.connections.per.ip", str(c.max_connections_per_ip), 3),
        ("connections.max.idle.ms", str(c.connections_max_idle_ms), 5),
        ("quota.window.num", str(c.quota_window_num), 3),
        ("quota.window.size.seconds", str(c.quota_window_size_seconds), 3),
        ("default.replication.factor", "1", 3),
    ]
    named = {name for name, _, _ in values}
    static = [ConfigEntry(name, value, SOURCE_STATIC_BROKER, kind, read_only=True)
              for name, value, kind in values]
    for key in TOPIC_CONFIGS.values():  # the topics' defaults, under the broker's names
        if key.broker_name and key.broker_name not in named:
            synonyms = _broker_synonyms(key, ctx.log.topic_defaults)
            _, value, source = synonyms[0]
            static.append(ConfigEntry(key.broker_name, value, source, key.type_code,
                                      read_only=True, doc=key.doc, synonyms=tuple(synonyms)))
    return static


def _broker_synonyms(key: ConfigKey, topic_defaults: Mapping[str, Any]
                     ) -> list[tuple[str, str, int]]:
    """The broker config behind a topic config, highest first: the broker's own value (if it
    sets one), then Kafka's default."""
    assert key.broker_name is not None
    default = (key.broker_name, key.text(key.default), SOURCE_DEFAULT)
    if key.name not in topic_defaults:
        return [default]
    return [(key.broker_name, key.text(topic_defaults[key.name]), SOURCE_STATIC_BROKER), default]


def _resource_entries(ctx: BrokerContext, resource_type: int, name: str) -> list[ConfigEntry]:
    if resource_type == TOPIC:
        authorize(ctx, AclOperation.DESCRIBE_CONFIGS, ResourceType.TOPIC, name)
        return topic_config_entries(ctx.log.topic_config(name))
    if resource_type == BROKER:
        authorize(ctx, AclOperation.DESCRIBE_CONFIGS, ResourceType.CLUSTER, CLUSTER_NAME)
        if name not in ("", str(ctx.node_id)):
            raise KafkaError(f"no broker {name!r}; this node is {ctx.node_id}",
                             ErrorCode.INVALID_REQUEST)
        return broker_config_entries(ctx)
    raise KafkaError(f"config resource type {resource_type} is not supported",
                     ErrorCode.INVALID_REQUEST)


async def handle_describe_configs(ctx: BrokerContext, header: RequestHeader, request: Any
                                  ) -> Any:
    version = header.api_version
    cls = response_class(ApiKey.DescribeConfigs, version)
    result_cls = cls.DescribeConfigsResult
    config_cls = result_cls.DescribeConfigsResourceResult
    synonym_cls = config_cls.DescribeConfigsSynonym
    results = []
    for resource in request.resources:
        result = result_cls(error_code=0, error_message=None, resource_type=resource.resource_type,
                            resource_name=resource.resource_name, configs=[])
        try:
            entries = _resource_entries(ctx, resource.resource_type, resource.resource_name)
        except KafkaError as exc:
            result.error_code, result.error_message = exc.code, str(exc)
        else:
            keys = resource.configuration_keys
            result.configs = [
                config_cls(
                    name=e.name, value=e.value, read_only=e.read_only,
                    is_default=e.source == SOURCE_DEFAULT, config_source=e.source,
                    is_sensitive=False, config_type=e.type,
                    documentation=e.doc if getattr(request, "include_documentation", False)
                    else None,
                    synonyms=([synonym_cls(name=n, value=v, source=src)
                               for n, v, src in e.synonyms or ((e.name, e.value, e.source),)]
                              if request.include_synonyms else []),
                )
                for e in entries if keys is None or e.name in keys
            ]
        results.append(result)
    return cls(throttle_time_ms=0, results=results)


def _alter(ctx: BrokerContext, resource_type: int, name: str, validate_only: bool,
           set_configs: dict[str, str], delete: set[str]) -> None:
    if resource_type == BROKER:
        authorize(ctx, AclOperation.ALTER_CONFIGS, ResourceType.CLUSTER, CLUSTER_NAME)
        raise InvalidConfigError("broker configs are static: set them when starting the broker")
    if resource_type != TOPIC:
        raise KafkaError(f"config resource type {resource_type} is not supported",
                         ErrorCode.INVALID_REQUEST)
    ops.alter_topic_configs(ctx, name, set_configs, delete, validate_only)


Changes = tuple[dict[str, str], set[str]]  # configs to set, configs to return to default


def _incremental_changes(ctx: BrokerContext, resource: Any) -> Changes:
    """Turn SET/DELETE/APPEND/SUBTRACT operations into values to set and names to reset."""
    names = [op.name for op in resource.configs]
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise KafkaError(f"duplicate config keys: {repeated}", ErrorCode.INVALID_REQUEST)
    set_configs: dict[str, str] = {}
    delete: set[str] = set()
    current: dict[str, str] | None = None
    for op in resource.configs:
        if op.config_operation == SET:
            if op.value is None:
                raise InvalidConfigError(f"null value for {op.name}")
            set_configs[op.name] = op.value
        elif op.config_operation == DELETE:
            delete.add(op.name)
        elif op.config_operation in (APPEND, SUBTRACT):
            if op.name not in TOPIC_CONFIGS or TOPIC_CONFIGS[op.name].type != "LIST":
                raise InvalidConfigError(f"{op.name} is not a list config")
            if current is None:
                current = ctx.log.topic_config(resource.resource_name).as_kafka_configs()
            items = [v for v in set_configs.get(op.name, current[op.name]).split(",") if v]
            change = [v for v in (op.value or "").split(",") if v]
            if op.config_operation == APPEND:
                items += [v for v in change if v not in items]
            else:
                items = [v for v in items if v not in change]
            set_configs[op.name] = ",".join(items)
        else:
            raise KafkaError(f"unknown config operation {op.config_operation}",
                             ErrorCode.INVALID_REQUEST)
    return set_configs, delete


def _alter_each(ctx: BrokerContext, cls: Any, request: Any,
                changes_of: Callable[[Any], Changes]) -> Any:
    """Both alter APIs: apply each resource's changes, answering an error per resource."""
    responses = []
    for resource in request.resources:
        response = cls.AlterConfigsResourceResponse(
            error_code=0, error_message=None, resource_type=resource.resource_type,
            resource_name=resource.resource_name)
        try:
            set_configs, delete = changes_of(resource)
            _alter(ctx, resource.resource_type, resource.resource_name, request.validate_only,
                   set_configs, delete)
        except KafkaError as exc:
            response.error_code, response.error_message = exc.code, str(exc)
        responses.append(response)
    return cls(throttle_time_ms=0, responses=responses)


async def handle_alter_configs(ctx: BrokerContext, header: RequestHeader, request: Any) -> Any:
    """AlterConfigs replaces a topic's whole set of overrides: unlisted configs revert."""

    def changes(resource: Any) -> Changes:
        if any(c.value is None for c in resource.configs):
            raise InvalidConfigError("null config values are not allowed")
        set_configs = {c.name: c.value for c in resource.configs}
        delete: set[str] = set()
        if resource.resource_type == TOPIC:
            overridden = ctx.log.topic_config(resource.resource_name)
            delete = set(overridden.overrides) - set(set_configs)
        return set_configs, delete

    return _alter_each(ctx, response_class(ApiKey.AlterConfigs, header.api_version), request,
                       changes)


async def handle_incremental_alter_configs(ctx: BrokerContext, header: RequestHeader,
                                           request: Any) -> Any:
    def changes(resource: Any) -> Changes:
        if resource.resource_type == TOPIC:
            return _incremental_changes(ctx, resource)
        return {}, set()

    return _alter_each(ctx, response_class(ApiKey.IncrementalAlterConfigs, header.api_version),
                       request, changes)


APIS = (
    Api(ApiKey.DescribeConfigs, 0, 4, handle_describe_configs),
    Api(ApiKey.AlterConfigs, 0, 2, handle_alter_configs),
    Api(ApiKey.IncrementalAlterConfigs, 0, 1, handle_incremental_alter_configs),
)
