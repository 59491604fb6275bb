"""poolserver behind HAProxy, configured as docs/deploy.md says.

Two instances behind one HAProxy, each health-checked on its admin listener's /readyz and
weighed by its agent-check port: the load spreads over both, a draining instance is taken out,
a rolling restart under steady load loses no request, nor do requests that cross the close of
an idle connection, and the agent's weights move traffic away from a slow instance.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ..waiting import wait_for
from .helpers import (
    TEMPLATES,
    Fleet,
    HAProxy,
    HeldRequest,
    SteadyLoad,
    doc_blocks,
    get_json,
    idle_closing_pair,
    load_across_idle_closes,
    rolling_restart,
)


def test_the_guide_shows_the_haproxy_configuration_the_tests_run() -> None:
    assert (TEMPLATES / "haproxy.cfg").read_text() in doc_blocks()


@pytest.mark.system
def test_haproxy_spreads_the_load_and_takes_a_draining_instance_out(
    haproxy: str, fleet: Fleet, tmp_path: Path
) -> None:
    a, b = fleet.start("a"), fleet.start("b")
    with HAProxy(haproxy, tmp_path, a, b) as proxy:
        proxy.wait_all_up()
        # What HAProxy adds reaches the application: milliseconds since the epoch.
        assert re.fullmatch(r"t=\d{13}", get_json(proxy.port, "/")["request_start"])
        with SteadyLoad(proxy.port, clients=4, max_requests=50) as load:
            load.finish(30)
        assert load.failures == []
        split = load.split()
        assert sum(split.values()) == 200
        assert split.get("a", 0) >= 60, split
        assert split.get("b", 0) >= 60, split

        # A request of 4 s keeps A draining, its /readyz saying 503, for that long.
        held = HeldRequest(a.ports.http, "/?ms=4000")
        wait_for("A to run the held request", lambda: a.metric("poolserver_workers_busy") > 0, 5)
        a.terminate()
        with SteadyLoad(proxy.port, clients=2) as load:

            def a_is_down() -> bool:
                row = proxy.servers()["a"]
                return bool(row["status"].startswith("DOWN") and row["check_code"] == "503")

            wait_for("HAProxy to mark A down on its /readyz answering 503", a_is_down, 10)
            # A still runs (finishing the held request): its /readyz took it out, not its exit.
            assert a.process.poll() is None, a.log()
            assert a.get("/readyz", admin=True)[0] == 503
            now = load.count()
            wait_for("100 more answers", lambda: load.count() >= now + 100, 10)
            load.stop()
        assert load.failures == [], f"{load.failures}\n{proxy.trouble()}"
        assert set(load.split(now)) == {"b"}
        assert held.result() == 200
        assert a.wait() == 0
        assert "shut down cleanly" in a.log()


@pytest.mark.system
@pytest.mark.timeout(90)
def test_a_rolling_restart_behind_haproxy_loses_no_request(
    haproxy: str, fleet: Fleet, tmp_path: Path
) -> None:
    a, b = fleet.start("a1"), fleet.start("b1")
    with HAProxy(haproxy, tmp_path, a, b) as proxy:
        proxy.wait_all_up()
        # HAProxy takes an instance back after two passed health checks (`rise 2`).
        rolling_restart(fleet, a, b, proxy, settle=proxy.wait_all_up)
        output = proxy.output()

    # HAProxy did meet a closed listener, and passed those requests to the other instance
    # (its log shows a retry count with a "+": redispatched).
    assert re.search(r" \d+/\d+/\d+/\d+/\+\d+ ", output), output[-3000:]


def shares(load: SteadyLoad, requests: int, names: tuple[str, str]) -> tuple[int, int]:
    """Let `requests` more requests be answered; how many each instance of `names` took."""
    split = load.next_split(requests)
    return split.get(names[0], 0), split.get(names[1], 0)


@pytest.mark.system
@pytest.mark.timeout(90)
def test_haproxy_weighs_instances_by_what_their_agent_reports(
    haproxy: str, fleet: Fleet, tmp_path: Path
) -> None:
    # Few workers, and requests that wait (10 ms) rather than compute, so that what makes an
    # instance busy is how long its requests take, not the CPU the test itself uses.
    a, b = fleet.start("a", "--workers", "4"), fleet.start("b", "--workers", "4")
    with HAProxy(haproxy, tmp_path, a, b) as proxy:
        proxy.wait_all_up()  # each agent has answered, idle: "ready up 100%"
        # Round robin without the agents first: it counts requests, however slow a server.
        for server in ("a", "b"):
            proxy.command(f"disable agent poolserver/{server}")
        assert proxy.weights() == (100, 100)
        with SteadyLoad(proxy.port, clients=6, path="/?ms=10", post_every=0) as load:
            equal = shares(load, 500, ("a", "b"))
            # A becomes slow: 50 ms a request against B's 10 ms.
            fleet.replace(a, "slow", delay_ms=40)
            load.wait_served_by("slow", 10)
            agent_off = shares(load, 500, ("slow", "b"))
            assert proxy.weights() == (100, 100)

            # Now the agents: A, busier, reports less free capacity than B.
            for server in ("a", "b"):
                proxy.command(f"enable agent poolserver/{server}")
            samples: list[tuple[int, int]] = []

            def a_weighs_less() -> bool:
                samples.append(proxy.weights())
                return samples[-1][0] < samples[-1][1]

            wait_for("the agent to give A a lower weight than B", a_weighs_less, 10)
            agent_on = shares(load, 500, ("slow", "b"))
            samples.append(proxy.weights())
            load.stop()

    summary = (
        f"(slow, fast) requests: equal apps {equal}, agent off {agent_off}, agent on "
        f"{agent_on}; weights (a, b) sampled: {samples}"
    )
    assert load.failures == [], summary
    assert 0.6 < equal[0] / equal[1] < 1.67, summary
    assert 0.6 < agent_off[0] / agent_off[1] < 1.67, summary
    # With the agents' weights, the fast instance takes clearly more.
    assert agent_on[1] >= 2 * agent_on[0], summary


@pytest.mark.system
@pytest.mark.timeout(90)
def test_requests_that_meet_an_idle_close_are_retried_posts_too(
    haproxy: str, fleet: Fleet, tmp_path: Path
) -> None:
    # An idle connection that poolserver closes (at the end of a drain's grace, or of its
    # keep-alive timeout) may cross a request HAProxy sends on it. Without
    # `option http-buffer-request`, 1 to 3 POSTs of these 1,000 failed in each run.
    a, b = idle_closing_pair(fleet)
    with HAProxy(haproxy, tmp_path, a, b) as proxy:
        proxy.wait_all_up()
        output = load_across_idle_closes(proxy)
    # The race did happen: HAProxy retried requests (a retry count above 0 in its log).
    assert re.search(r" \d+/\d+/\d+/\d+/\+?[1-9]\d* ", output), output[-3000:]
