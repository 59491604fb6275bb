"""The pool is a library of its own: importing it loads nothing of the HTTP server."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_pool_loads_no_server_module() -> None:
    code = (
        "import sys, poolserver.pool\n"
        "ours = sorted(m for m in sys.modules if m.split('.')[0] == 'poolserver')\n"
        "print(' '.join(ours))\n"
        "print('httptools' in sys.modules, 'socket' in sys.modules, 'selectors' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    ).stdout.splitlines()
    modules = out[0].split()
    assert all(m == "poolserver" or m.startswith("poolserver.pool") for m in modules), modules
    assert out[1] == "False False False"
