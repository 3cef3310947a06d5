"""node.id is a setting (Kafka's name; default 1, as Kafka's single-node quickstart config):
Metadata, FindCoordinator, DescribeCluster, DescribeConfigs and replica assignments use it."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.protocol.admin import CreateTopicsRequest, DescribeClusterRequest
from kafka.protocol.metadata import FindCoordinatorRequest, MetadataRequest

from minikafka.errors import ErrorCode

from .conftest import InProcessBroker, RawClient


def _node_ids(raw: RawClient, topic: str) -> list[Any]:
    """The node id as each request that names it answers."""
    cls = CreateTopicsRequest[7]
    created: Any = raw.request(cls(topics=[cls.CreatableTopic(
        name=topic, num_partitions=-1, replication_factor=-1, configs=[],
        assignments=[cls.CreatableTopic.CreatableReplicaAssignment(partition_index=0,
                                                                   broker_ids=[7])])],
        timeout_ms=10_000, validate_only=False))
    meta_cls = MetadataRequest[12]
    metadata: Any = raw.request(meta_cls(
        topics=[meta_cls.MetadataRequestTopic(name=topic)], allow_auto_topic_creation=False,
        include_topic_authorized_operations=False))
    part = metadata.topics[0].partitions[0] if metadata.topics[0].partitions else None
    find_cls = FindCoordinatorRequest[3]
    coordinator: Any = raw.request(find_cls(key="g", key_type=0))
    cluster: Any = raw.request(DescribeClusterRequest[1](
        include_cluster_authorized_operations=False, endpoint_type=1))
    return [created.topics[0].error_code, [b.node_id for b in metadata.brokers],
            metadata.controller_id, part and (part.leader_id, part.replica_nodes),
            coordinator.node_id, [b.broker_id for b in cluster.brokers]]


def test_the_default_node_id_is_1(raw: RawClient, topic: str) -> None:
    assert _node_ids(raw, topic) == [ErrorCode.INVALID_REPLICA_ASSIGNMENT, [1], 1, None, 1, [1]]


def test_node_id_is_a_setting(own_broker: InProcessBroker, topic: str) -> None:
    own_broker.extra = (*own_broker.extra, "--node-id", "7")
    raw = RawClient(own_broker.start().bootstrap)
    try:
        assert _node_ids(raw, topic) == [0, [7], 7, (7, [7]), 7, [7]]
    finally:
        raw.close()


def test_a_data_dir_keeps_its_node_id(own_broker: InProcessBroker) -> None:
    """As Kafka: a data directory records the node.id that formatted it, and a broker started
    on it with another id refuses to start (it would answer as a different node for the same
    log), naming both ids."""
    own_broker.start().stop()
    own_broker.extra = (*own_broker.extra, "--node-id", "7")
    with pytest.raises(RuntimeError, match=r"node\.id 7.*node\.id=1|node\.id=1.*node\.id 7"):
        own_broker.start()
