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
        assert service["environment"]["SCHEMA_REGISTRY_URL"].startswith("${SCHEMA_REGISTRY_URL")
        args = parser.parse_args(service["command"])  # the image's entrypoint is `minikafka`
        assert args.shop_command == name, shlex.join(service["command"])


def _volume_targets(service: dict[str, Any]) -> set[str]:
    return {mount.split(":")[1] for mount in service.get("volumes", [])}


# Where each image keeps its data by default, and where a volume must be for it to persist.
APACHE_KAFKA_DATA = "/var/lib/kafka/data"  # created for appuser in apache/kafka's Dockerfile


@pytest.mark.parametrize("name", ["kafka.yml", "kafka-cluster.yml"])
def test_kafka_data_lands_in_its_volume(name: str) -> None:
    """apache/kafka writes to /tmp/kraft-combined-logs unless log.dirs says otherwise: a volume
    anywhere else keeps nothing across `down`/`up`."""
    for service in load(name)["services"].values():
        if service["image"].startswith("apache/kafka:"):
            assert service["environment"]["KAFKA_LOG_DIRS"] == APACHE_KAFKA_DATA
            assert APACHE_KAFKA_DATA in _volume_targets(service)


@pytest.mark.parametrize("name", [*BROKER_FILES, "shop.yml"])
def test_servers_are_health_checked_and_waited_for(name: str) -> None:
    services = load(name)["services"]
    for service_name, service in services.items():
        if service.get("ports") or service_name in ("kafka", "minikafka") \
                or service_name.startswith("kafka-"):
            assert "test" in service.get("healthcheck", {}), service_name
        for needed, condition in service.get("depends_on", {}).items():
            assert condition["condition"] == "service_healthy", (service_name, needed)
            assert needed in services or condition.get("required") is False


def test_the_cluster_ui_is_the_maintained_fork() -> None:
    assert load("kafka-cluster.yml")["services"]["kafka-ui"]["image"].startswith(
        "ghcr.io/kafbat/kafka-ui:")


def test_minikafka_serves_containers_and_the_host() -> None:
    """Containers are told minikafka:9092; host clients are told a localhost address whose port
    is published, and the console and the schema registry are published too."""
    from minikafka.broker import load_config

    service = load("minikafka.yml")["services"]["minikafka"]
    config = load_config(build_parser().parse_args(service["command"]), environ={})
    published = {int(port.split(":")[1]): int(port.split(":")[2])
                 for port in service["ports"]}
    told = {listener.name: config.advertised_for(listener.name)
            for listener in config.bind_listeners}
    assert ("minikafka", 9092) in told.values()
    host_side = [(host, port) for host, port in told.values() if host == "localhost"]
    assert host_side and all(published.get(port) == port for _, port in host_side)
    assert config.ui and published.get(config.ui_port) == config.ui_port
    assert config.schema_registry
    assert published.get(config.schema_registry_port) == config.schema_registry_port
    assert config.host == "0.0.0.0"  # the console is reachable through the published port


def test_minikafka_exposes_only_sasl_ssl_with_acls_and_secrets_outside_git() -> None:
    """What may be published beyond loopback is the SASL_SSL listener; plaintext ones reach
    containers and this host only; ACLs are on; the certificate comes from a read-only mount of
    a git-ignored directory."""
    from minikafka.broker import load_config

    service = load("minikafka.yml")["services"]["minikafka"]
    config = load_config(build_parser().parse_args(service["command"]), environ={})
    protocols = {listener.name: config.security_protocol(listener.name)
                 for listener in config.bind_listeners}
    published = {int(port.split(":")[2]) for port in service["ports"]}
    plaintext_published = {listener.port for listener in config.bind_listeners
                           if protocols[listener.name] == "PLAINTEXT"} & published
    assert all(port.startswith("127.0.0.1:") for port in service["ports"]
               if int(port.split(":")[2]) in plaintext_published)
    assert "SASL_SSL" in protocols.values()
    assert config.authorizer_class_name and "User:admin" in config.super_users
    assert config.ui_auth == "auto" and config.host == "0.0.0.0"  # so the console asks a login
    mount = next(v for v in service["volumes"] if v.startswith("./secrets:"))
    assert mount.endswith(":ro") and config.ssl_certfile.startswith(mount.split(":")[1])
    ignored = (DEPLOY.parent / ".gitignore").read_text().splitlines()
    assert "/deploy/secrets/" in ignored
