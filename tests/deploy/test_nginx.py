"""poolserver behind nginx, configured as docs/deploy.md says.

Two instances behind one nginx: the load spreads over both, and a rolling restart (SIGTERM,
clean drain, a new process on the same port, then the other instance) under steady keep-alive
load loses no request, POSTs included, nor do requests that cross the close of an idle
upstream connection.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ..waiting import wait_for
from .helpers import (
    TEMPLATES,
    Fleet,
    Instance,
    SteadyLoad,
    doc_blocks,
    get_json,
    idle_closing_pair,
    load_across_idle_closes,
    rolling_restart,
    start_nginx,
)


def test_the_guide_shows_the_nginx_configuration_the_tests_run() -> None:
    assert (TEMPLATES / "nginx.conf").read_text() in doc_blocks()


@pytest.mark.system
def test_nginx_spreads_the_load_over_both_instances(
    nginx: str, fleet: Fleet, tmp_path: Path
) -> None:
    a, b = fleet.start("a"), fleet.start("b")
    with start_nginx(nginx, tmp_path, a, b) as proxy:
        answer = get_json(proxy.port, "/")
        # What nginx adds reaches the application: seconds since the epoch, to the millisecond.
        assert re.fullmatch(r"t=\d{10}\.\d{3}", answer["request_start"]), answer
        assert answer["scheme"] == "http"

        with SteadyLoad(proxy.port, clients=4, max_requests=50) as load:
            load.finish(30)
        assert load.failures == []
        split = load.split()
        assert sum(split.values()) == 200
        # Round robin: about 100 each.
        assert split.get("a", 0) >= 60, split
        assert split.get("b", 0) >= 60, split
        # Each instance's own count agrees (the first request went to one of them).
        for instance in (a, b):
            expected = split[instance.name] + (answer["name"] == instance.name)
            wait_for_count(instance, expected)


def wait_for_count(instance: Instance, expected: int) -> None:
    """Wait until the instance's /metrics counts `expected` 2xx responses (it counts each
    just after sending it, so the last may lag behind the client by a moment)."""

    def counted() -> bool:
        return instance.metric("poolserver_requests_total", 'status_class="2xx"') == expected

    wait_for(f"{instance.name}'s /metrics to count {expected} responses", counted, 5)


@pytest.mark.system
@pytest.mark.timeout(90)
def test_a_rolling_restart_behind_nginx_loses_no_request(
    nginx: str, fleet: Fleet, tmp_path: Path
) -> None:
    a, b = fleet.start("a1"), fleet.start("b1")
    with start_nginx(nginx, tmp_path, a, b) as proxy:
        rolling_restart(fleet, a, b, proxy)
    # nginx did meet a closed listener, and passed those requests to the other instance.
    assert "(111: Connection refused) while connecting to upstream" in proxy.output()


@pytest.mark.system
@pytest.mark.timeout(90)
def test_requests_that_meet_an_idle_close_are_retried_posts_too(
    nginx: str, fleet: Fleet, tmp_path: Path
) -> None:
    # As behind HAProxy. One retry (`proxy_next_upstream_tries 2`) finds B; without
    # `non_idempotent`, POSTs failed with 502.
    a, b = idle_closing_pair(fleet)
    with start_nginx(nginx, tmp_path, a, b) as proxy:
        errors = load_across_idle_closes(proxy)
    # The race did happen: nginx met upstream connections closed under it, and retried.
    assert "upstream prematurely closed connection" in errors or "reset by peer" in errors, errors
