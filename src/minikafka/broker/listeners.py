"""Listeners as Kafka configures them: `listeners`, `advertised.listeners` and
`listener.security.protocol.map`.

A broker may listen on several addresses, each a named listener (`INTERNAL://:9092,
HOST://:29092`), and tells each client the advertised address of the listener the client came in
on: containers are sent to `minikafka:9092`, the host to `localhost:29092`. Without `listeners`
there is one PLAINTEXT listener on `host`/`port`, advertised as `advertised_host`.

SSL and SASL_SSL listeners speak TLS (tls.py); SASL_PLAINTEXT and SASL_SSL ones authenticate
each connection first (sasl.py).
"""

from __future__ import annotations

from dataclasses import dataclass

# Kafka's default listener.security.protocol.map: each protocol is a listener name of itself.
DEFAULT_PROTOCOL_MAP = "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")


@dataclass(frozen=True, slots=True)
class Listener:
    name: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.name}://{self.host}:{self.port}"


def parse_listeners(text: str, setting: str) -> list[Listener]:
    """`NAME://HOST:PORT,...` (an empty host listens everywhere, as in Kafka); ValueError names
    the setting and what is wrong."""
    listeners: list[Listener] = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        name, sep, address = item.partition("://")
        host, colon, port = address.rpartition(":")
        if not (sep and name and colon and port.isdigit() and int(port) < 65536):
            raise ValueError(f"{setting}: {item!r} is not NAME://HOST:PORT")
        name = name.upper()
        if any(existing.name == name for existing in listeners):
            raise ValueError(f"{setting}: listener {name} is named twice")
        listeners.append(Listener(name, host.strip("[]"), int(port)))
    if not listeners:
        raise ValueError(f"{setting}: no listener given")
    return listeners


def parse_protocol_map(text: str) -> dict[str, str]:
    """`NAME:PROTOCOL,...` as a dict; ValueError for an unknown protocol."""
    mapping: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",") if part.strip()):
        name, sep, protocol = item.partition(":")
        protocol = protocol.strip().upper()
        if not sep or protocol not in PROTOCOLS:
            raise ValueError(f"listener_security_protocol_map: {item!r} is not NAME:PROTOCOL "
                             f"with PROTOCOL one of {', '.join(PROTOCOLS)}")
        mapping[name.strip().upper()] = protocol
    return mapping


def check_listeners(listeners: list[Listener], advertised: list[Listener],
                    protocols: dict[str, str]) -> None:
    """Every listener has a security protocol; every advertised one is a listener."""
    names = {listener.name for listener in listeners}
    for listener in listeners:
        protocol = protocols.get(listener.name)
        if protocol is None:
            raise ValueError(f"listener {listener.name} has no security protocol: add "
                             f"{listener.name}:PLAINTEXT to listener_security_protocol_map")
    for listener in advertised:
        if listener.name not in names:
            raise ValueError(f"advertised_listeners: {listener.name} is not one of the "
                             f"listeners ({', '.join(sorted(names))})")


def client_address(bound: Listener, advertised: Listener | None) -> tuple[str, int]:
    """The address a client of `bound` is told: the advertised one, else the bound one (a
    wildcard host becomes localhost; port 0 in either means the port actually bound)."""
    host, port = (advertised.host, advertised.port) if advertised else (bound.host, bound.port)
    if host in WILDCARD_HOSTS:
        host = "localhost"
    return host, port or bound.port
