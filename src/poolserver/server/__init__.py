"""The HTTP/1.1 WSGI server: acceptor, poller, connection jobs on the worker pool."""

from ._server import Server, ShutdownReport
from ._supervisor import Supervisor

__all__ = ["Server", "ShutdownReport", "Supervisor"]
