"""TLS and SASL with real clients (issue 17): confluent-kafka, kcat and aiokafka over SSL,
SASL_PLAINTEXT and SASL_SSL with PLAIN and SCRAM-SHA-256/512; wrong passwords and expired
certificates refused with a clear client-side error and one broker log line; the mTLS principal;
SCRAM users over the wire (AdminClient, `minikafka users`) and on a stopped broker's data
directory. Certificates are made by the tests (certkit)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kafka.protocol.metadata import MetadataRequest
from kafka.protocol.sasl import SaslAuthenticateRequest, SaslHandshakeRequest

from certkit import Certs, make_certs
from minikafka.cli.main import main as cli
from minikafka.shop.ports import free_port

from .conftest import InProcessBroker, RawClient

PASSWORD = "alice-secret"
PROTOCOLS = ("SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass
class Secured:
    broker: InProcessBroker
    certs: Certs
    ports: dict[str, int]  # security protocol -> its listener's port

    def config(self, protocol: str, mechanism: str = "SCRAM-SHA-512", user: str = "alice",
               password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
        """librdkafka settings for a client of the listener speaking `protocol`."""
        config: dict[str, Any] = {"bootstrap.servers": f"127.0.0.1:{self.ports[protocol]}",
                                  "security.protocol": protocol}
        if protocol.endswith("SSL"):
            config["ssl.ca.location"] = str(self.certs.ca)
        if protocol.startswith("SASL"):
            config.update({"sasl.mechanism": mechanism, "sasl.username": user,
                           "sasl.password": password})
        return config | extra

    def log_since(self, mark: int) -> list[str]:
        return self.broker.log()[mark:].splitlines()


def secure_broker(data_dir: Path, certs: Certs, *extra: str) -> Secured:
    """A broker with a listener per security protocol (PLAINTEXT first) and user alice, created
    on its data directory before it starts, as an operator would."""
    ports = {protocol: free_port() for protocol in ("PLAINTEXT", *PROTOCOLS)}
    assert cli(["users", "add", "alice", "--password", PASSWORD,
                "--data-dir", str(data_dir)]) == 0
    broker = InProcessBroker(
        data_dir, "--no-ui", "--group-initial-rebalance-delay-ms", "0",
        "--listeners", ",".join(f"{p}://127.0.0.1:{port}" for p, port in ports.items()),
        "--ssl-certfile", str(certs.server.cert), "--ssl-keyfile", str(certs.server.key),
        "--ssl-cafile", str(certs.ca), "--ssl-client-auth", "requested", *extra)
    return Secured(broker, certs, ports)


@contextmanager
def serving(secured: Secured) -> Iterator[Secured]:
    """The broker of `secured` started for a `with` block, and stopped cleanly after it."""
    secured.broker.start()
    try:
        yield secured
    finally:
        assert secured.broker.stop() == 0


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[Secured]:
    started = secure_broker(tmp_path_factory.mktemp("secured") / "data", certs)
    started.broker.start()
    yield started
    assert started.broker.stop() == 0
    print(started.broker.log())


def roundtrip(config: dict[str, Any], topic: str, count: int = 10) -> list[bytes]:
    """Produce `count` records through `config`'s listener and read them back."""
    producer = Producer(config)
    for i in range(count):
        producer.produce(topic, f"record {i}".encode())
    assert producer.flush(15) == 0
    consumer = Consumer({**config, "group.id": f"{topic}-reader", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    values: list[bytes] = []
    try:
        deadline = time.monotonic() + 15
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                values.append(message.value())
    finally:
        consumer.close()
    return values


def client_error(config: dict[str, Any], expected: str) -> str:
    """The error containing `expected` that a client connecting through `config` meets (it
    retries on its own; a connection torn down at once may first show up as just that)."""
    errors: list[str] = []
    admin = AdminClient({**config, "error_cb": lambda err: errors.append(err.str()),
                         "reconnect.backoff.ms": 200, "reconnect.backoff.max.ms": 200})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        admin.poll(0.2)
        found = [error for error in errors if expected in error]
        if found:
            return found[0]
    raise AssertionError(f"no error with {expected!r} among {errors}")


# --- real clients on every listener -------------------------------------------------------------


@pytest.mark.parametrize(("protocol", "mechanism"), [
    ("SSL", ""), *((protocol, mechanism) for protocol in ("SASL_PLAINTEXT", "SASL_SSL")
                   for mechanism in MECHANISMS)])
def test_confluent_kafka_roundtrip(secured: Secured, topic: str, protocol: str,
                                   mechanism: str) -> None:
    assert roundtrip(secured.config(protocol, mechanism), topic) == [
        f"record {i}".encode() for i in range(10)]


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
@pytest.mark.parametrize(("protocol", "mechanism"), [
    ("SSL", ""), ("SASL_PLAINTEXT", "PLAIN"), ("SASL_SSL", "SCRAM-SHA-256"),
    ("SASL_SSL", "SCRAM-SHA-512")])
def test_kcat(secured: Secured, topic: str, protocol: str, mechanism: str) -> None:
    settings = [arg for key, value in secured.config(protocol, mechanism).items()
                if key != "bootstrap.servers"
                for arg in ("-X", f"{key.replace('mechanism', 'mechanisms')}={value}")]

    def kcat(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(["kcat", "-b", f"127.0.0.1:{secured.ports[protocol]}", *settings,
                               *args], input=stdin, text=True, capture_output=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    kcat("-P", "-t", topic, stdin="one\ntwo\n")
    assert kcat("-C", "-t", topic, "-e", "-f", "%o %s\n").splitlines() == ["0 one", "1 two"]


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_aiokafka_with_scram(secured: Secured, topic: str, mechanism: str) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.helpers import create_ssl_context

    settings: dict[str, Any] = {
        "bootstrap_servers": f"127.0.0.1:{secured.ports['SASL_SSL']}",
        "security_protocol": "SASL_SSL", "sasl_mechanism": mechanism,
        "sasl_plain_username": "alice", "sasl_plain_password": PASSWORD,
        "ssl_context": create_ssl_context(cafile=str(secured.certs.ca))}

    async def run() -> list[bytes]:
        producer = AIOKafkaProducer(**settings)
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"through aiokafka")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **settings)
        await consumer.start()
        try:
            record = await asyncio.wait_for(consumer.getone(), 15)
        finally:
            await consumer.stop()
        return [record.value]

    assert asyncio.run(run()) == [b"through aiokafka"]


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_wrong_password_is_refused_with_a_clear_error(secured: Secured,
                                                      mechanism: str) -> None:
    expected = ("SASL authentication error: Authentication failed during authentication due to "
                f"invalid credentials with SASL mechanism {mechanism}")
    client_error(secured.config("SASL_SSL", mechanism, password="wrong"), expected)
    client_error(secured.config("SASL_PLAINTEXT", mechanism, user="nobody"), expected)


def one_line_per_connection(broker: InProcessBroker, mark: int, reason: str) -> None:
    """Each connection refused since `mark` is one `failed authentication` line of the
    broker's, saying `reason` (written as the client reads its error, so maybe just after)."""
    deadline = time.monotonic() + 5
    while True:
        refused = [line for line in broker.log()[mark:].splitlines()
                   if "failed authentication" in line]
        if refused or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert refused and all(reason in line for line in refused), refused
    peers = [re.search(r"with (\S+) ", line)[1] for line in refused]  # type: ignore[index]
    assert len(peers) == len(set(peers)), refused


class TlsRawClient(RawClient):
    def __init__(self, bootstrap: str, cafile: Path) -> None:
        host, port = bootstrap.rsplit(":", 1)
        context = ssl.create_default_context(cafile=str(cafile))
        self.sock = context.wrap_socket(socket.create_connection((host, int(port)), timeout=5),
                                        server_hostname=host)


def test_failed_authentication_is_answered_logged_once_and_closed(secured: Secured) -> None:
    """SASL_AUTHENTICATION_FAILED with a message, then the connection closes, and the broker
    says so in exactly one line."""
    mark = len(secured.broker.log())
    client = TlsRawClient(f"127.0.0.1:{secured.ports['SASL_SSL']}", secured.certs.ca)
    port = client.sock.getsockname()[1]
    try:
        handshake: Any = client.request(SaslHandshakeRequest[1](mechanism="PLAIN"))
        assert (handshake.error_code, handshake.mechanisms) == (
            0, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
        answer: Any = client.request(SaslAuthenticateRequest[2](
            auth_bytes=b"\0alice\0not-her-password"))
        assert answer.error_code == 58  # SASL_AUTHENTICATION_FAILED
        assert "invalid credentials" in answer.error_message
        assert client.is_closed()
    finally:
        client.close()
    lines = [line for line in secured.log_since(mark) if f":{port}" in line]
    assert len(lines) == 1, lines
    assert "failed authentication" in lines[0] and "wrong password" in lines[0]


def test_only_authentication_is_served_before_it(secured: Secured) -> None:
    client = RawClient(f"127.0.0.1:{secured.ports['SASL_PLAINTEXT']}")
    try:
        client.send(_metadata_frame())
        assert client.read_frame() is None  # closed, unanswered
    finally:
        client.close()


def test_pipelined_requests_wait_for_authentication(secured: Secured) -> None:
    """Handshake, authenticate and Metadata sent in one write: before authentication requests
    are read one at a time, so Metadata is read as alice's, once she is authenticated."""
    client = RawClient(f"127.0.0.1:{secured.ports['SASL_PLAINTEXT']}")
    try:
        requests = [SaslHandshakeRequest[1](mechanism="PLAIN"), SaslAuthenticateRequest[2](
            auth_bytes=b"\0alice\0" + PASSWORD.encode())]
        frames = b""
        for correlation_id, request in enumerate(requests, 1):
            request.with_header(correlation_id=correlation_id, client_id="raw")
            frames += request.encode(header=True, framed=True)
        client.send(frames + _metadata_frame())
        for request in requests:
            answer: Any = request.header.get_response_class().decode(client.read_frame(),
                                                                   header=True)
            assert answer.error_code == 0
        assert client.read_frame() is not None  # Metadata answered, not a closed connection
    finally:
        client.close()


@pytest.mark.parametrize("token", [b"", b"garbage", b"n,,n=alice", b"p=x,,n=alice,r=abc",
                                   b"n,a=bob,n=alice,r=abc"])
def test_malformed_scram_messages_are_refused(secured: Secured, token: bytes) -> None:
    client = RawClient(f"127.0.0.1:{secured.ports['SASL_PLAINTEXT']}")
    try:
        client.request(SaslHandshakeRequest[1](mechanism="SCRAM-SHA-256"))
        answer: Any = client.request(SaslAuthenticateRequest[2](auth_bytes=token))
        assert answer.error_code == 58 and "invalid credentials" in answer.error_message
        assert client.is_closed()
    finally:
        client.close()


def test_unauthenticated_requests_are_small(secured: Secured) -> None:
    """Kafka's sasl.server.max.receive.size (512 KiB): before authentication a bigger frame
    closes the connection at once, so that strangers cannot hold socket.request.max.bytes (100
    MiB) of the broker's request budget each."""
    mark = len(secured.broker.log())
    client = RawClient(f"127.0.0.1:{secured.ports['SASL_PLAINTEXT']}")
    client.sock.settimeout(2)
    try:
        client.send((1 << 20).to_bytes(4, "big") + bytes(1000))
        assert client.read_frame() is None  # closed, unanswered
    finally:
        client.close()
    assert "sasl.server.max.receive.size" in secured.broker.log()[mark:]


def _metadata_frame() -> bytes:
    request = MetadataRequest[12](topics=None, allow_auto_topic_creation=False,
                                  include_topic_authorized_operations=False)
    request.with_header(correlation_id=1, client_id="raw")
    return request.encode(header=True, framed=True)


def test_sasl_handshake_v0_then_bare_tokens(secured: Secured) -> None:
    """Kafka 0.10's way: after SaslHandshake v0 the tokens travel bare (size-prefixed)."""
    client = RawClient(f"127.0.0.1:{secured.ports['SASL_PLAINTEXT']}")
    try:
        handshake: Any = client.request(SaslHandshakeRequest[0](mechanism="PLAIN"))
        assert handshake.error_code == 0
        client.send_frame(b"\0alice\0" + PASSWORD.encode())
        assert client.read_frame() == b""  # PLAIN's empty server token: authenticated
        client.send(_metadata_frame())
        assert client.read_frame() is not None
    finally:
        client.close()


def test_expired_client_certificate_is_refused(secured: Secured) -> None:
    mark = len(secured.broker.log())
    client_error(secured.config(  # the broker's TLS alert reached the client
        "SSL", **{"ssl.certificate.location": str(secured.certs.expired_client.cert),
                  "ssl.key.location": str(secured.certs.expired_client.key)}),
        "ssl/tls alert certificate expired")
    one_line_per_connection(secured.broker, mark, "certificate has expired")


@pytest.mark.parametrize("case", ["expired broker certificate", "client certificate required"])
def test_refused_tls_handshakes(tmp_path: Path, certs: Certs, case: str) -> None:
    extra, protocol, expected = {
        "expired broker certificate": (("--ssl-certfile", str(certs.expired_server.cert),
                                        "--ssl-keyfile", str(certs.expired_server.key)),
                                       "SASL_SSL", "certificate verify failed"),
        "client certificate required": (("--ssl-client-auth", "required"), "SSL",
                                        "alert certificate required")}[case]
    with serving(secure_broker(tmp_path / "data", certs, *extra)) as refusing:
        client_error(refusing.config(protocol), expected)
        one_line_per_connection(refusing.broker, 0, "TLS handshake failed")


def test_mtls_principal_is_the_certificate_subject(tmp_path: Path, certs: Certs) -> None:
    with serving(secure_broker(tmp_path / "data", certs, "--log-level", "DEBUG")) as mtls:
        config = mtls.config("SSL", **{"ssl.certificate.location": str(certs.client.cert),
                                       "ssl.key.location": str(certs.client.key)})
        assert roundtrip(config, "mtls", count=1) == [b"record 0"]
        assert "as User:CN=alice,O=Shop" in mtls.broker.log()


def test_sasl_handshake_refusals(tmp_path: Path) -> None:
    """A mechanism not enabled is UNSUPPORTED_SASL_MECHANISM with the enabled ones; a handshake
    on a listener without SASL is ILLEGAL_SASL_STATE; both close the connection."""
    plain, sasl = free_port(), free_port()
    broker = InProcessBroker(tmp_path / "data", "--no-ui", "--listeners",
                             f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}",
                             "--sasl-enabled-mechanisms", "SCRAM-SHA-512").start()
    try:
        for port, error, mechanisms in ((sasl, 33, ["SCRAM-SHA-512"]),
                                        (plain, 34, ["SCRAM-SHA-512"])):
            client = RawClient(f"127.0.0.1:{port}")
            try:
                answer: Any = client.request(SaslHandshakeRequest[1](mechanism="PLAIN"))
                assert (answer.error_code, answer.mechanisms) == (error, mechanisms)
                assert client.is_closed()
            finally:
                client.close()
    finally:
        assert broker.stop() == 0
    with pytest.raises(ValueError, match="sasl_enabled_mechanisms: GSSAPI"):
        InProcessBroker(tmp_path / "data", "--sasl-enabled-mechanisms", "GSSAPI").start()


def test_tls_settings_are_checked_at_start(tmp_path: Path) -> None:
    broker = InProcessBroker(tmp_path / "data", "--listeners", "SSL://127.0.0.1:0")
    with pytest.raises(ValueError, match="listener SSL uses TLS: give ssl_certfile"):
        broker.start()


# --- credentials ---------------------------------------------------------------------------------


def test_admin_client_alters_and_describes_scram_credentials(secured: Secured) -> None:
    admin = AdminClient(secured.config("SASL_SSL"))
    sha256 = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192)
    for future in admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion("bob", sha256, b"bob-secret")]).values():
        future.result(10)
    described = admin.describe_user_scram_credentials(["bob"])["bob"].result(10)
    assert [(i.mechanism, i.iterations) for i in described.scram_credential_infos] == [
        (ScramMechanism.SCRAM_SHA_256, 8192)]
    assert roundtrip(secured.config("SASL_SSL", "SCRAM-SHA-256", "bob", "bob-secret"),
                     "bobs", count=1) == [b"record 0"]
    everyone = admin.describe_user_scram_credentials().result(10)
    assert [i.mechanism for i in everyone["alice"].scram_credential_infos] == [
        ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512]
    for future in admin.alter_user_scram_credentials(
            [UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_256)]).values():
        future.result(10)
    with pytest.raises(KafkaException, match="does not exist"):
        admin.describe_user_scram_credentials(["bob"])["bob"].result(10)
    client_error(secured.config("SASL_SSL", "SCRAM-SHA-256", "bob", "bob-secret"),
                 "invalid credentials")


def test_alter_refuses_bad_credentials_per_user(secured: Secured) -> None:
    admin = AdminClient(secured.config("SASL_PLAINTEXT"))
    few = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 1000)
    futures = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion("carol", few, b"x"),
        UserScramCredentialDeletion("nobody", ScramMechanism.SCRAM_SHA_256)])
    with pytest.raises(KafkaException, match="iterations must be 4096 to 16384"):
        futures["carol"].result(10)
    with pytest.raises(KafkaException, match="does not exist"):
        futures["nobody"].result(10)


def test_credentials_survive_a_restart_and_keep_no_password(tmp_path: Path,
                                                            certs: Certs) -> None:
    with serving(secure_broker(tmp_path / "data", certs)) as kept:
        assert cli(["users", "add", "dave", "--password", "dave-secret", "--mechanism",
                    "SCRAM-SHA-512", "-b", f"127.0.0.1:{kept.ports['PLAINTEXT']}"]) == 0
        kept.broker.restart()
        assert roundtrip(kept.config("SASL_PLAINTEXT", "PLAIN", "dave", "dave-secret"),
                         "daves", count=1) == [b"record 0"]
    stored = (tmp_path / "data" / "__meta" / "scram-credentials.json").read_text()
    assert sorted(json.loads(stored)["users"]) == ["alice", "dave"]
    for secret in ("dave-secret", PASSWORD):
        assert secret not in stored and base64.b64encode(secret.encode()).decode() not in stored


def test_users_cli_over_a_secured_listener_and_on_the_data_dir(
        tmp_path: Path, certs: Certs, capsys: pytest.CaptureFixture[str]) -> None:
    secured = secure_broker(tmp_path / "data", certs)
    command_config = tmp_path / "client.properties"
    command_config.write_text("".join(f"{key}={value}\n" for key, value in
                                      secured.config("SASL_SSL").items()
                                      if key != "bootstrap.servers"))
    wire = ["-b", f"127.0.0.1:{secured.ports['SASL_SSL']}", "--command-config",
            str(command_config)]
    with serving(secured):
        assert cli(["users", "add", "erin", "--password", "erin-secret", *wire]) == 0
        capsys.readouterr()
        assert cli(["users", "list", *wire]) == 0
        assert capsys.readouterr().out.splitlines() == [
            "alice: SCRAM-SHA-256 (iterations=4096), SCRAM-SHA-512 (iterations=4096)",
            "erin: SCRAM-SHA-256 (iterations=4096), SCRAM-SHA-512 (iterations=4096)"]
        assert cli(["users", "delete", "erin", *wire]) == 0
        assert cli(["users", "add", "x", "--password", "x", "--data-dir",
                    str(tmp_path / "data")]) == 1
        assert "in use" in capsys.readouterr().err
    capsys.readouterr()
    assert cli(["users", "list", "--data-dir", str(tmp_path / "data")]) == 0
    assert re.findall(r"^\w+", capsys.readouterr().out, re.M) == ["alice"]


# --- re-authentication (KIP-368) ----------------------------------------------------------------


def test_sessions_expire_and_clients_reauthenticate(tmp_path: Path, certs: Certs) -> None:
    """With connections.max.reauth.ms, librdkafka re-authenticates on its connection before
    the session ends and keeps working; a client that does not is disconnected."""
    with serving(secure_broker(tmp_path / "data", certs, "--connections-max-reauth-ms", "1500",
                               "--log-level", "DEBUG")) as short:
        producer = Producer(short.config("SASL_PLAINTEXT", "SCRAM-SHA-256"))
        producer.produce("reauth", b"before")
        assert producer.flush(10) == 0
        time.sleep(2.5)
        producer.produce("reauth", b"after")
        assert producer.flush(10) == 0
        log = short.broker.log()
        assert "re-authenticated" in log and "SASL session expired" not in log, log
        client = RawClient(f"127.0.0.1:{short.ports['SASL_PLAINTEXT']}")
        try:
            client.request(SaslHandshakeRequest[1](mechanism="PLAIN"))
            answer: Any = client.request(SaslAuthenticateRequest[1](
                auth_bytes=b"\0alice\0" + PASSWORD.encode()))
            assert (answer.error_code, answer.session_lifetime_ms) == (0, 1500)
            time.sleep(1.6)
            client.send(_metadata_frame())
            assert client.read_frame() is None  # expired: closed
        finally:
            client.close()
