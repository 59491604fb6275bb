"""Binding the listening socket."""

from __future__ import annotations

import socket


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
