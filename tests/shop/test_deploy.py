"""The docker-compose files cannot be started here (no Docker engine): check what can be."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from minikafka.cli import build_parser

DEPLOY = Path(__file__).parents[2] / "deploy"
BROKER_FILES = {"kafka.yml": ["kafka"], "kafka-cluster.yml": ["kafka-1", "kafka-2", "kafka-3",
                                                              "schema-registry", "kafka-ui"],
                "minikafka.yml": ["minikafka"]}


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / name).read_text())
    return document


@pytest.mark.parametrize(("name", "services"), BROKER_FILES.items())
def test_broker_files_parse_and_publish_on_loopback_only(name: str, services: list[str]) -> None:
    compose = load(name)
    assert list(compose["services"]) == services
    for service in compose["services"].values():
        assert "image" in service
        assert all(port.startswith("127.0.0.1:") for port in service.get("ports", []))


def test_the_cluster_is_three_kraft_voters_with_replicated_topics() -> None:
    services = load("kafka-cluster.yml")["services"]
    voters = "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    for number in (1, 2, 3):
        env = services[f"kafka-{number}"]["environment"]
        assert env["KAFKA_NODE_ID"] == number
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == voters
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3
    assert services["kafka-ui"]["environment"]["KAFKA_CLUSTERS_0_SCHEMAREGISTRY"] == (
        "http://schema-registry:8081")


def test_shop_services_take_one_variable_and_run_real_commands() -> None:
    compose = load("shop.yml")
    assert (DEPLOY / compose["services"]["api"]["build"]["dockerfile"].split("/")[-1]).exists()
    parser = build_parser()
    for name, service in compose["services"].items():
        assert service["environment"]["KAFKA_BOOTSTRAP_SERVERS"].startswith(
            "${KAFKA_BOOTSTRAP_SERVERS")
        args = parser.parse_args(service["command"])  # the image's entrypoint is `minikafka`
        assert args.shop_command == name, shlex.join(service["command"])
