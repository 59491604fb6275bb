"""Listening sockets (TCP, Unix domain, inherited) and the TLS context."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import stat
import sys

from ..config import Config


def bind(host: str, port: int, backlog: int) -> socket.socket:
    """A listening TCP socket on `host:port` (IPv4 or IPv6), non-blocking.

    Linux's TCP_DEFER_ACCEPT makes most connections arrive with their request readable, so
    the first worker to take one rarely finds nothing to read.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if hasattr(socket, "TCP_DEFER_ACCEPT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_unix(path: str, backlog: int) -> socket.socket:
    """A listening Unix domain socket at `path`, non-blocking; a stale socket file is removed
    first (a file that is not a socket is left alone, and binding fails)."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def inherit(fd: int) -> socket.socket:
    """The already listening socket at descriptor `fd` (systemd socket activation), made
    non-blocking.

    Raises:
        ValueError: `fd` is not a listening stream socket.
    """
    sock = socket.socket(fileno=fd)
    if sock.type != socket.SOCK_STREAM or not sock.getsockopt(
        socket.SOL_SOCKET, socket.SO_ACCEPTCONN
    ):
        sock.detach()
        raise ValueError(f"descriptor {fd} is not a listening stream socket")
    sock.setblocking(False)
    return sock


def nodelay_inherited(listener: socket.socket) -> bool:
    """Set TCP_NODELAY on a TCP listener; True where the connections it accepts inherit it
    (Linux copies it to each), so that it need not be set on every one: a system call less
    per connection. False for a listener that refuses it (a Unix socket)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        return False
    return True


def open_listener(config: Config) -> socket.socket:
    """The listening socket the config asks for: inherited, Unix domain, or TCP."""
    if config.fd is not None:
        return inherit(config.fd)
    if config.uds is not None:
        return bind_unix(config.uds, config.backlog)
    return bind(config.host, config.port, config.backlog)


def tls_context(config: Config) -> ssl.SSLContext | None:
    """The server's TLS context, or None when TLS is off (no certfile)."""
    if config.certfile is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion[config.ssl_min_version]
    context.load_cert_chain(config.certfile, config.keyfile)
    if config.ca_certs is not None:
        context.load_verify_locations(config.ca_certs)
        context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["http/1.1"])
    return context
