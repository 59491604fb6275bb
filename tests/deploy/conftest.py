"""Fixtures of the deployment tests: the proxies' programs and a fleet of instances."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.system_programs import require_program

from .helpers import Fleet


@pytest.fixture
def nginx() -> str:
    """The nginx program (the test skips where it is missing, and fails so in CI)."""
    return require_program("nginx")


@pytest.fixture
def haproxy() -> str:
    """The haproxy program (the test skips where it is missing, and fails so in CI)."""
    return require_program("haproxy")


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    """poolserver instances for one test, started as docs/deploy.md starts them (but draining
    for up to 10 s, with 8 workers); all killed at the end."""
    instances = Fleet(
        "--request-start-header",
        "--forwarded-allow-ips",
        "127.0.0.1",
        "--drain-timeout",
        "10",
        "--workers",
        "8",
    )
    try:
        yield instances
    finally:
        instances.close()
