"""poolserver: a bounded worker pool, and the HTTP/1.1 WSGI server built on it."""

__version__ = "0.1.0"
