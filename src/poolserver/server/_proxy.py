"""What a trusted proxy tells about the client: the PROXY protocol, and forwarding headers.

Both are believed only from `forwarded_allow_ips`: from anyone else they would let a client
claim any address or scheme.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from typing import Any, Final

from ..config import Networks
from ..http import ProtocolError

V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107  # the longest v1 line, CRLF included
_V2_HEADER = struct.Struct("!12sBBH")


def parse_proxy_header(buf: bytes) -> tuple[int, tuple[str, int] | None] | None:
    """Parse a PROXY protocol header (v1 or v2) at the start of `buf`.

    Returns:
        None if more bytes are needed; else (bytes consumed, the client's (address, port), or
        None when the proxy speaks for itself: LOCAL, UNKNOWN, or a family other than IP).

    Raises:
        ProtocolError: the bytes are not a PROXY header.
    """
    if buf.startswith(V2_SIGNATURE[: min(len(buf), 12)]) and buf[:1] == b"\r":
        return _parse_v2(buf)
    if not b"PROXY "[: len(buf)] == buf[:6]:
        raise ProtocolError(400, "a PROXY protocol header was expected")
    end = buf.find(b"\r\n")
    if end < 0:
        if len(buf) >= V1_MAX:
            raise ProtocolError(400, "PROXY v1 header too long")
        return None
    return end + 2, _parse_v1(buf[:end])


def _parse_v1(line: bytes) -> tuple[str, int] | None:
    parts = line.split(b" ")
    if len(parts) >= 2 and parts[1] == b"UNKNOWN":
        return None
    if len(parts) != 6 or parts[1] not in (b"TCP4", b"TCP6"):
        raise ProtocolError(400, "malformed PROXY v1 header")
    try:
        address = ipaddress.ip_address(parts[2].decode("ascii"))
        port = int(parts[4])
    except ValueError as exc:
        raise ProtocolError(400, "malformed PROXY v1 address") from exc
    if not 0 <= port <= 65535:
        raise ProtocolError(400, "malformed PROXY v1 port")
    return str(address), port


def _parse_v2(buf: bytes) -> tuple[int, tuple[str, int] | None] | None:
    if len(buf) < 16:
        return None
    signature, version_command, family, length = _V2_HEADER.unpack_from(buf)
    if signature != V2_SIGNATURE or version_command >> 4 != 2:
        raise ProtocolError(400, "malformed PROXY v2 header")
    if len(buf) < 16 + length:
        return None
    body = buf[16 : 16 + length]
    consumed = 16 + length
    if version_command & 0x0F == 0:  # LOCAL: the proxy's own connection (health checks)
        return consumed, None
    if family >> 4 == 1 and len(body) >= 12:  # AF_INET
        return consumed, (socket.inet_ntop(socket.AF_INET, body[0:4]), _port(body, 8))
    if family >> 4 == 2 and len(body) >= 36:  # AF_INET6
        return consumed, (socket.inet_ntop(socket.AF_INET6, body[0:16]), _port(body, 32))
    return consumed, None


def _port(body: bytes, offset: int) -> int:
    port: int = struct.unpack_from("!H", body, offset)[0]
    return port


def is_trusted(address: str, networks: Networks | None) -> bool:
    """Whether `address` belongs to the trusted networks (None: everyone; "": a Unix socket,
    whose peers are on this machine)."""
    if networks is None or address == "":
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def apply_forwarded(environ: dict[str, Any], networks: Networks | None) -> None:
    """Take the client's address, scheme and host from forwarding headers of a trusted proxy.

    `Forwarded` (RFC 7239) wins over the `X-Forwarded-*` headers. The client's address is the
    last one in the chain that is not itself a trusted proxy.
    """
    forwarded = environ.get("HTTP_FORWARDED")
    if forwarded:
        _apply_rfc7239(environ, forwarded, networks)
        return
    chain = environ.get("HTTP_X_FORWARDED_FOR")
    if chain:
        client = _client_of([part.strip() for part in chain.split(",")], networks)
        if client:
            environ["REMOTE_ADDR"] = client
            environ["REMOTE_PORT"] = ""
    proto = environ.get("HTTP_X_FORWARDED_PROTO")
    if proto:
        scheme = proto.split(",")[-1].strip().lower()
        if scheme in ("http", "https"):
            environ["wsgi.url_scheme"] = scheme
    host = environ.get("HTTP_X_FORWARDED_HOST")
    if host:
        environ["HTTP_HOST"] = host.split(",")[-1].strip()


def _apply_rfc7239(environ: dict[str, Any], value: str, networks: Networks | None) -> None:
    elements = [_pairs(element) for element in value.split(",")]
    client = _client_of([e.get("for", "") for e in elements], networks)
    if client:
        environ["REMOTE_ADDR"] = client
        environ["REMOTE_PORT"] = ""
    last = elements[-1]
    if last.get("proto", "").lower() in ("http", "https"):
        environ["wsgi.url_scheme"] = last["proto"].lower()
    if last.get("host"):
        environ["HTTP_HOST"] = last["host"]


def _pairs(element: str) -> dict[str, str]:
    pairs = {}
    for pair in element.split(";"):
        name, _, value = pair.strip().partition("=")
        pairs[name.strip().lower()] = value.strip().strip('"')
    return pairs


def _client_of(chain: list[str], networks: Networks | None) -> str | None:
    """The rightmost address that is not a trusted proxy (or the leftmost if all are)."""
    addresses = [_strip_port(item) for item in chain if item]
    for address in reversed(addresses):
        if not is_trusted(address, networks):
            return address
    return addresses[0] if addresses else None


def _strip_port(item: str) -> str:
    if item.startswith("["):  # [v6]:port, as Forwarded writes it
        return item[1 : item.find("]")] if "]" in item else item
    if item.count(":") == 1:  # v4:port
        return item.split(":", 1)[0]
    return item
