"""System programs some tests drive (chromium, ...): skipped where missing, except in CI.

Where the environment variable POOLSERVER_REQUIRE_SYSTEM_PROGRAMS is set (to anything but the
empty string), as CI sets it, a missing program fails the test instead: there, a skip would
hide that the test never ran.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE = "POOLSERVER_REQUIRE_SYSTEM_PROGRAMS"
# Daemons (nginx, haproxy) live in sbin directories, which a user's PATH often lacks.
SBIN = os.pathsep.join(["/usr/local/sbin", "/usr/sbin", "/sbin"])


def require_program(*names: str) -> str:
    """The path of the first of `names` found on PATH or in an sbin directory; else skip (or
    fail, under REQUIRE)."""
    for name in names:
        path = shutil.which(name) or shutil.which(name, path=SBIN)
        if path is not None:
            return path
    reason = f"{' or '.join(names)} not found on PATH"
    if os.environ.get(REQUIRE):
        pytest.fail(f"{reason}, and {REQUIRE} is set")
    pytest.skip(reason)
