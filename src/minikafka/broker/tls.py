"""TLS for SSL and SASL_SSL listeners, with Python's `ssl` module.

Kafka's keystore is our PEM certificate chain and key (`ssl_certfile`, `ssl_keyfile`,
`ssl_key_password`); its truststore, used only to check client certificates, is `ssl_cafile`.
`ssl_client_auth` is Kafka's `ssl.client.auth`: `none`, `requested` (a certificate is checked
when the client offers one) or `required` (mTLS). A client that presents a certificate on an SSL
listener is `User:<its subject>`, written as Kafka's default principal builder writes it
(X500Principal.getName(): RFC 2253, most specific name first, e.g. `User:CN=alice,O=Shop`).
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import ssl
from typing import Any

CLIENT_AUTH = {"none": ssl.CERT_NONE, "requested": ssl.CERT_OPTIONAL,
               "required": ssl.CERT_REQUIRED}
# getpeercert()'s attribute names -> the short names of RFC 2253 (others keep their name).
_SHORT_NAMES = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
                "countryName": "C", "stateOrProvinceName": "ST", "localityName": "L",
                "streetAddress": "STREET", "domainComponent": "DC", "userId": "UID"}
_SPECIAL = ',+"\\<>;'


def server_context(certfile: str, keyfile: str | None, password: str | None,
                   cafile: str | None, client_auth: str) -> ssl.SSLContext:
    """The listeners' TLS context; OSError or ssl.SSLError name what cannot be loaded."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile, password)
    context.verify_mode = CLIENT_AUTH[client_auth]
    if context.verify_mode != ssl.CERT_NONE:
        if cafile:
            context.load_verify_locations(cafile)
        else:
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    return context


def certificate_principal(ssl_object: Any) -> str | None:
    """`User:<subject>` of the client's verified certificate, or None without one."""
    cert = ssl_object.getpeercert() if ssl_object is not None else None
    if not cert:
        return None
    rdns = ("+".join(f"{_SHORT_NAMES.get(key, key)}={_escape(value)}" for key, value in rdn)
            for rdn in reversed(cert["subject"]))
    return "User:" + ",".join(rdns)


def _escape(value: str) -> str:
    escaped = "".join("\\" + c if c in _SPECIAL else c for c in value)
    if escaped.startswith(("#", " ")):
        escaped = "\\" + escaped
    return escaped[:-1] + "\\ " if escaped.endswith(" ") else escaped


class _AlertingSSLProtocol(asyncio.sslproto.SSLProtocol):
    """asyncio's TLS protocol, except that a failed handshake sends its alert (why the peer was
    refused, e.g. "certificate expired") before the connection drops: asyncio drops it at once,
    and the client then only sees the connection closed."""

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None and self._transport is not None:
            self._process_outgoing()  # type: ignore[attr-defined]  # asyncio's, untyped
        super()._on_handshake_complete(handshake_exc)


async def start_tls(transport: asyncio.Transport, protocol: asyncio.BaseProtocol,
                    context: ssl.SSLContext) -> asyncio.Transport:
    """`loop.start_tls(transport, protocol, context, server_side=True)`, with the alerting
    protocol above; raises what the handshake failed with (the transport then closed)."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    tls = _AlertingSSLProtocol(loop, protocol, context, waiter, server_side=True,
                               call_connection_made=False)
    transport.pause_reading()
    transport.set_protocol(tls)
    loop.call_soon(tls.connection_made, transport)
    loop.call_soon(transport.resume_reading)
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return tls._app_transport
