"""Where the server listens (TCP, Unix socket, inherited descriptor, TLS) and whom it believes
about the client (forwarding headers and the PROXY protocol, from trusted peers only)."""

from __future__ import annotations

import _socket
import http.client
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from poolserver.http import ProtocolError
from poolserver.server._proxy import V2_SIGNATURE, parse_proxy_header
from poolserver.testing import serving

from .system_programs import require_program


def echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answers with what the server told it about the client."""
    keys = ("REMOTE_ADDR", "REMOTE_PORT", "wsgi.url_scheme", "HTTP_HOST", "PATH_INFO")
    body = json.dumps({key: environ.get(key) for key in keys}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def exchange(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    return answer


def body_of(answer: bytes) -> dict[str, Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    result: dict[str, Any] = json.loads(body)
    return result


REQUEST = b"GET /who HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n"


def test_serving_on_a_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "poolserver.sock")
    with serving(echo, uds=path) as server:
        assert server.url == f"unix:{path}"
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(path)
            seen = body_of(exchange(sock, REQUEST))
    assert seen["REMOTE_ADDR"] == ""
    assert seen["PATH_INFO"] == "/who"


def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    with socket.socket(socket.AF_UNIX) as old:
        old.bind(path)  # left behind, as a killed server leaves it
    with serving(echo, uds=path), socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(path)
        assert body_of(exchange(sock, REQUEST))["PATH_INFO"] == "/who"


def test_serving_on_an_inherited_descriptor() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    fd = os.dup(listener.fileno())  # as systemd passes it: a descriptor of our own
    listener.close()
    with serving(echo, fd=fd) as server:
        assert server.address[1] == port
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            assert body_of(exchange(sock, REQUEST))["PATH_INFO"] == "/who"


@pytest.mark.parametrize("inherited", [False, True], ids=["bound", "inherited"])
def test_responses_leave_without_waiting_for_nagles_algorithm(inherited: bool) -> None:
    # TCP_NODELAY on the server's side of every connection: without it, a response written
    # in pieces may wait for the client's delayed acknowledgement (up to 40 ms on Linux).
    options: dict[str, Any] = {"host": "127.0.0.1", "port": 0}
    if inherited:
        listener = socket.create_server(("127.0.0.1", 0))
        options = {"fd": os.dup(listener.fileno())}
        listener.close()
    with (
        serving(echo, **options) as server,
        socket.create_connection(server.address, timeout=5) as sock,
    ):
        sock.sendall(b"GET /who HTTP/1.1\r\nHost: example\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        # Answered and kept alive: the server holds the connection.
        (conn,) = server._connections.values()
        assert isinstance(conn.sock, _socket.socket)
        assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_a_descriptor_that_is_not_a_listener_is_refused() -> None:
    left, right = socket.socketpair()
    with left, right, pytest.raises(ValueError, match="not a listening"):
        serving(echo, fd=left.fileno()).__enter__()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_program("openssl")
    directory = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            shutil.which("openssl") or "openssl",
            *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"),
            *("-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")),
            *("-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return directory


def tls_client(certificate: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate / "cert.pem"))


def test_serving_over_tls(certificate: Path) -> None:
    options = {"certfile": str(certificate / "cert.pem"), "keyfile": str(certificate / "key.pem")}
    with serving(echo, **options) as server:
        assert server.url.startswith("https://")
        client = http.client.HTTPSConnection(
            *server.address, timeout=5, context=tls_client(certificate)
        )
        for _ in range(3):  # keep-alive over TLS
            client.request("GET", "/secure")
            response = client.getresponse()
            seen = json.loads(response.read())
            assert response.status == 200
            assert seen["wsgi.url_scheme"] == "https"
        client.close()


def test_a_slow_tls_handshake_holds_no_worker(certificate: Path) -> None:
    options = {
        "certfile": str(certificate / "cert.pem"),
        "keyfile": str(certificate / "key.pem"),
        "workers": 1,
    }
    with serving(echo, **options) as server:
        silent = [socket.create_connection(server.address, timeout=5) for _ in range(3)]
        for sock in silent:
            sock.sendall(b"\x16\x03\x01")  # the start of a ClientHello, and then nothing
        client = http.client.HTTPSConnection(
            *server.address, timeout=5, context=tls_client(certificate)
        )
        client.request("GET", "/")
        assert client.getresponse().status == 200  # the only worker was free for it
        client.close()
        for sock in silent:
            sock.close()


def test_a_silent_tls_client_is_closed_at_the_header_timeout(certificate: Path) -> None:
    options = {
        "certfile": str(certificate / "cert.pem"),
        "keyfile": str(certificate / "key.pem"),
        "header_timeout": 0.2,
    }
    with serving(echo, **options) as server, socket.create_connection(server.address) as sock:
        sock.settimeout(5)
        sock.sendall(b"\x16\x03\x01")
        assert sock.recv(1024) == b""  # closed by the server, long before our 5 s


def ask(client: http.client.HTTPConnection) -> int:
    client.request("GET", "/")
    return client.getresponse().status


def test_a_client_certificate_is_required_with_ca_certs(certificate: Path) -> None:
    options = {
        "certfile": str(certificate / "cert.pem"),
        "keyfile": str(certificate / "key.pem"),
        "ca_certs": str(certificate / "cert.pem"),
    }
    with serving(echo, **options) as server:
        anonymous = http.client.HTTPSConnection(
            *server.address, timeout=5, context=tls_client(certificate)
        )
        with pytest.raises((ssl.SSLError, ConnectionError)):
            ask(anonymous)
        anonymous.close()
        context = tls_client(certificate)
        context.load_cert_chain(certificate / "cert.pem", certificate / "key.pem")
        known = http.client.HTTPSConnection(*server.address, timeout=5, context=context)
        known.request("GET", "/")
        assert known.getresponse().status == 200
        known.close()


def test_forwarding_headers_from_a_trusted_proxy_are_believed() -> None:
    headers = (
        b"X-Forwarded-For: 203.0.113.7, 127.0.0.1\r\n"
        b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: shop.example\r\n"
    )
    with serving(echo) as server, socket.create_connection(server.address, timeout=5) as sock:
        seen = body_of(exchange(sock, REQUEST.replace(b"\r\n\r\n", b"\r\n" + headers + b"\r\n")))
    assert seen["REMOTE_ADDR"] == "203.0.113.7"  # the last address that is not a proxy
    assert seen["wsgi.url_scheme"] == "https"
    assert seen["HTTP_HOST"] == "shop.example"


def test_the_forwarded_header_wins() -> None:
    headers = (
        b'Forwarded: for="[2001:db8::1]:4711";proto=https;host=a.example\r\n'
        b"X-Forwarded-For: 198.51.100.1\r\n"
    )
    with serving(echo) as server, socket.create_connection(server.address, timeout=5) as sock:
        seen = body_of(exchange(sock, REQUEST.replace(b"\r\n\r\n", b"\r\n" + headers + b"\r\n")))
    assert seen["REMOTE_ADDR"] == "2001:db8::1"
    assert seen["wsgi.url_scheme"] == "https"
    assert seen["HTTP_HOST"] == "a.example"


def test_forwarding_headers_from_anyone_else_are_ignored() -> None:
    headers = b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n"
    with (
        serving(echo, forwarded_allow_ips="10.0.0.0/8") as server,
        socket.create_connection(server.address, timeout=5) as sock,
    ):
        seen = body_of(exchange(sock, REQUEST.replace(b"\r\n\r\n", b"\r\n" + headers + b"\r\n")))
    assert seen["REMOTE_ADDR"] == "127.0.0.1"
    assert seen["wsgi.url_scheme"] == "http"


def proxy_v2(client: tuple[str, int], server: tuple[str, int]) -> bytes:
    addresses = socket.inet_aton(client[0]) + socket.inet_aton(server[0])
    ports = struct.pack("!HH", client[1], server[1])
    return V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", 12) + addresses + ports


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY TCP4 192.0.2.9 198.51.100.2 40000 80\r\n",
        proxy_v2(("192.0.2.9", 40000), ("198.51.100.2", 80)),
    ],
    ids=["v1", "v2"],
)
def test_the_proxy_protocol_gives_the_clients_address(header: bytes) -> None:
    with serving(echo, proxy_protocol=True) as server:
        with socket.create_connection(server.address, timeout=5) as sock:
            seen = body_of(exchange(sock, header + REQUEST))
        assert (seen["REMOTE_ADDR"], seen["REMOTE_PORT"]) == ("192.0.2.9", "40000")
        # Byte by byte, too: the header may arrive in pieces.
        with socket.create_connection(server.address, timeout=5) as sock:
            for byte in header:
                sock.send(bytes([byte]))
            seen = body_of(exchange(sock, REQUEST))
        assert seen["REMOTE_ADDR"] == "192.0.2.9"


def test_a_connection_without_the_expected_proxy_header_is_refused() -> None:
    with (
        serving(echo, proxy_protocol=True) as server,
        socket.create_connection(server.address, timeout=5) as sock,
    ):
        assert exchange(sock, REQUEST).startswith(b"HTTP/1.1 400")


def test_an_untrusted_peer_is_not_asked_for_a_proxy_header() -> None:
    with (
        serving(echo, proxy_protocol=True, forwarded_allow_ips="10.0.0.0/8") as server,
        socket.create_connection(server.address, timeout=5) as sock,
    ):
        assert body_of(exchange(sock, REQUEST))["REMOTE_ADDR"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET", (32, ("1.2.3.4", 1))),
        (b"PROXY TCP6 2001:db8::1 2001:db8::2 3 4\r\n", (40, ("2001:db8::1", 3))),
        (b"PROXY UNKNOWN\r\n", (15, None)),
        (b"PROXY TCP4 1.2.3.4", None),
        (V2_SIGNATURE[:7], None),
        (V2_SIGNATURE + bytes([0x20, 0x00, 0, 0]), (16, None)),  # LOCAL
    ],
)
def test_parse_proxy_header(data: bytes, expected: object) -> None:
    assert parse_proxy_header(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n",
        b"PROXY TCP4 1.2.3.4\r\n",
        b"PROXY TCP4 nonsense 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n",
        b"PROXY " + b"x" * 200,
        V2_SIGNATURE + bytes([0x31, 0x11, 0, 0]),
    ],
)
def test_parse_proxy_header_refuses_nonsense(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_proxy_header(data)
