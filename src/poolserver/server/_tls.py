"""TLS connections: handshakes driven by the I/O threads, and an SSL socket that behaves like
a non-blocking plain one for the rest of the server.

A handshake needs the client's messages: driven by the acceptor and the poller, without
blocking, a slow or silent client holds no worker (and the header timeout bounds it).
"""

from __future__ import annotations

import logging
import ssl

log = logging.getLogger("poolserver")

_WANT = (ssl.SSLWantReadError, ssl.SSLWantWriteError)


class TLSSocket:
    """An `ssl.SSLSocket` seen as a plain non-blocking socket.

    Wanting to read or write is `BlockingIOError`, as for a plain socket; data that OpenSSL
    decrypted ahead (which epoll cannot see) is returned with the read that uncovered it.
    """

    __slots__ = ("_ssl",)

    def __init__(self, ssl_sock: ssl.SSLSocket) -> None:
        self._ssl = ssl_sock

    @property
    def ssl(self) -> ssl.SSLSocket:
        """The wrapped socket."""
        return self._ssl

    def fileno(self) -> int:
        """The descriptor."""
        return self._ssl.fileno()

    def recv(self, size: int) -> bytes:
        """Up to `size` bytes of plaintext; b"" at the end of the stream."""
        try:
            data = self._ssl.recv(size)
        except _WANT as exc:
            raise BlockingIOError(str(exc)) from exc
        while len(data) < size and (pending := self._ssl.pending()):
            data += self._ssl.recv(min(pending, size - len(data)))
        return data

    def send(self, data: bytes | memoryview, flags: int = 0) -> int:
        """Bytes of `data` accepted. `flags` (a plain socket's send flags) are ignored: TLS
        records are framed by the ssl module, which takes none."""
        try:
            return self._ssl.send(data)
        except _WANT as exc:
            raise BlockingIOError(str(exc)) from exc

    def shutdown(self, how: int) -> None:
        """Shut the underlying socket down (no TLS close_notify: the peer sees EOF)."""
        self._ssl.shutdown(how)

    def close(self) -> None:
        """Close the socket."""
        self._ssl.close()


def handshake(sock: ssl.SSLSocket) -> int:
    """Advance a non-blocking server handshake.

    Returns:
        0 when done; 1 when it must wait to read; 2 when it must wait to write.

    Raises:
        OSError: the handshake failed (a bad client, an unknown CA...).
    """
    try:
        sock.do_handshake()
    except ssl.SSLWantReadError:
        return 1
    except ssl.SSLWantWriteError:
        return 2
    return 0
