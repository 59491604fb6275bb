"""The supervisor of `--processes N`: binds the listener, forks the serving processes, keeps
them running, replaces them without refusing a request, and answers for all of them.

- Each serving process (`_child`) has its own acceptor, poller and pool on the shared
  listener, and accepts only while it has a free worker.
- A process that dies is replaced, after a back-off that grows while deaths follow one
  another (0.1 s doubling up to 10 s). If none ever became ready (the application does not
  load, say), the supervisor gives up and exits with the process's code.
- SIGTERM or SIGINT: every process drains, then the supervisor exits 0 if all drained
  cleanly. A second signal makes them exit at once.
- SIGHUP: N fresh processes start; once all are ready the old ones drain (they answer what
  they hold; the new ones take every new connection). A process past `max_requests` is
  replaced the same way, alone.
- The admin and agent-check listeners live here and answer from the processes' snapshots,
  merged (`_snapshot.merge`); what exited processes had counted is kept, so counters never
  go back.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import selectors
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic

from ..config import Config, process_count
from ..wsgi import WSGIApp
from ._channel import ChannelError, LineReader, Message, encode
from ._child import EXIT_APP_FAILED, ChildSpec, run_child
from ._listen import open_listener, tls_context
from ._loop import EventLoop
from ._loop_listeners import LoopAdmin, LoopAgent
from ._snapshot import Snapshot, add_counters, empty_counters, merge

log = logging.getLogger("poolserver")

ROUND_TIMEOUT = 1.0  # an admin answer waits this long at most for every process's snapshot
HEARTBEAT = 1.0  # seconds between snapshots asked of every process
SILENCE_LIMIT = 30.0  # a process that answers nothing for this long is killed and replaced
STARTUP_LIMIT = 60.0  # a new process not ready by then is killed (a reload is abandoned)
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 10.0
BACKOFF_FORGET = 30.0  # a death this long after the last one starts the back-off afresh
KILL_MARGIN = 5.0  # past drain_timeout, what has not exited is killed

_STARTING, _SERVING, _RETIRING = "starting", "serving", "retiring"


@dataclass(eq=False)
class _Process:
    """A serving process, as the supervisor knows it."""

    number: int
    pid: int
    sock: socket.socket
    started: float
    state: str = _STARTING
    heard: float = 0.0
    last: Snapshot | None = None
    final: bool = False
    gone: bool = False  # its end of the channel closed
    doomed: bool = False  # its replacement is on its way: it retires once that one is ready
    replacement_for: _Process | None = None
    reader: LineReader = field(default_factory=LineReader)
    out: bytearray = field(default_factory=bytearray)

    @property
    def label(self) -> str:
        return f"p{self.number}"

    def __str__(self) -> str:
        return f"process {self.label} (pid {self.pid})"


@dataclass(eq=False)
class _Round:
    """Snapshots asked of every process at once, merged when all have answered."""

    id: int
    detail: bool
    waiting: set[_Process]
    parts: dict[_Process, Snapshot]
    callbacks: list[Callable[[Snapshot], None]]
    timer: int = -1


class Supervisor:
    """Runs `--processes N` (see the module's docstring).

    Args:
        config: the server's config; each process gets it without admin or agent port.
        app: the application when loaded before forking (`--preload`); else each process
            loads `config.app` with `load`.
    """

    def __init__(self, config: Config, app: WSGIApp | None, load: Callable[[str], WSGIApp]):
        self.config = config
        self.app = app
        self.load = load
        self.count = process_count(config)
        self.child_config = config.replace(admin_port=None, agent_port=None)
        self.loop = EventLoop()
        self.processes: dict[int, _Process] = {}
        self.numbers = itertools.count(1)
        self.retired = empty_counters()
        self.rounds: dict[int, _Round] = {}
        self.round_ids = itertools.count(1)
        self.started = monotonic()
        self.stopping = False
        self.exit_code = 0
        self.ever_ready = False
        self.failures = 0
        self.last_death = 0.0
        self.reloading: list[_Process] = []
        self.listener: socket.socket | None = None
        self.admin: LoopAdmin | None = None
        self.agent: LoopAgent | None = None

    # ----------------------------------------------------------------- running

    def run(self) -> int:
        """Serve until stopped; returns the exit code."""
        self.listener = open_listener(self.config)
        tls_context(self.config)  # a bad certificate is reported here, not N times
        self.loop.handle_signals(
            (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD), self._on_signal
        )
        config = self.config
        if config.admin_port is not None:
            self.admin = LoopAdmin(self.loop, config.admin_host, config.admin_port, self.merged)
            log.info("admin listener on http://%s:%d", *self.admin.address)
        if config.agent_port is not None:
            self.agent = LoopAgent(self.loop, config.admin_host, config.agent_port, self.merged)
            log.info("agent-check listener on %s:%d", *self.agent.address)
        log.info(
            "poolserver listening on %s (%d processes of %d workers, queue %d)",
            _url(self.listener, config),
            self.count,
            config.workers,
            config.queue_size,
        )
        for _ in range(self.count):
            self._spawn()
        self.loop.call_later(HEARTBEAT, self._heartbeat)
        while self.processes or not self.stopping:
            self.loop.run_once()
        self._close()
        return self.exit_code

    def _close(self) -> None:
        for listener in (self.admin, self.agent):
            if listener is not None:
                listener.close()
        if self.listener is not None:
            self.listener.close()
        self.loop.close()
        log.info("shut down %s", "cleanly" if self.exit_code == 0 else "with losses")

    # ----------------------------------------------------------------- processes

    def _spawn(self) -> _Process | None:
        assert self.listener is not None
        mine, theirs = socket.socketpair()
        number = next(self.numbers)
        try:
            pid = os.fork()
        except OSError as exc:
            log.error("cannot fork a serving process: %s", exc)  # noqa: TRY400
            mine.close()
            theirs.close()
            self._schedule_restart()
            return None
        if pid == 0:
            mine.close()
            self._forget_in_child()
            spec = ChildSpec(self.app, self.child_config, self.load, f"p{number}")
            run_child(spec, self.listener, theirs)
        theirs.close()
        mine.setblocking(False)
        process = _Process(number, pid, mine, started=monotonic(), heard=monotonic())
        self.processes[pid] = process
        self.loop.watch(mine.fileno(), selectors.EVENT_READ, lambda e: self._ready(process, e))
        self.loop.call_later(STARTUP_LIMIT, lambda: self._check_started(process))
        log.debug("%s started", process)
        return process

    def _forget_in_child(self) -> None:
        """In a new child: drop every descriptor of the supervisor's but the listener."""
        self.loop.close()
        for listener in (self.admin, self.agent):
            if listener is not None:
                for client in list(listener.clients):
                    client.sock.close()
                listener.sock.close()
        for process in self.processes.values():
            process.sock.close()

    def _readable(self, process: _Process) -> None:
        try:
            data = process.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            process.gone = True
            self.loop.unwatch(process.sock.fileno())  # SIGCHLD will tell how it ended
            return
        try:
            messages = process.reader.feed(data)
        except ChannelError as exc:
            log.error("%s sent garbage (%s): killing it", process, exc)  # noqa: TRY400
            _kill(process.pid, signal.SIGKILL)
            return
        process.heard = monotonic()
        for message in messages:
            self._on_message(process, message)

    def _send(self, process: _Process, message: Message) -> None:
        if process.gone:
            return
        process.out += encode(message)
        self._flush(process)

    def _flush(self, process: _Process) -> None:
        try:
            sent = process.sock.send(process.out)
        except BlockingIOError:
            sent = 0
        except OSError:
            process.out.clear()
            return
        del process.out[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if process.out else 0)
        self.loop.watch(process.sock.fileno(), events, lambda e: self._ready(process, e))

    def _ready(self, process: _Process, events: int) -> None:
        if events & selectors.EVENT_WRITE:
            self._flush(process)
        if events & selectors.EVENT_READ:
            self._readable(process)

    def _on_message(self, process: _Process, message: Message) -> None:
        op = message.get("op")
        if op == "ready":
            self._on_ready(process)
        elif op == "snapshot":
            process.last = message["data"]
            if message.get("recycle") and process.state == _SERVING and not process.doomed:
                self._recycle(process)
            self._on_part(message.get("id"), process, message["data"])
        elif op == "final":
            process.last, process.final = message["data"], True

    def _on_ready(self, process: _Process) -> None:
        if process.state != _STARTING:
            return
        process.state = _SERVING
        self.ever_ready = True
        log.info("%s serving", process)
        if self.stopping:
            _kill(process.pid, signal.SIGTERM)
            return
        old = process.replacement_for
        if old is not None and old.pid in self.processes:
            log.info("%s replaced by %s", old, process)
            self._retire(old)
        if self.reloading and all(p.state == _SERVING for p in self.reloading):
            for old_process in [p for p in self.processes.values() if p.doomed]:
                self._retire(old_process)
            log.info("reloaded: %s serving", ", ".join(p.label for p in self.reloading))
            self.reloading = []

    def _retire(self, process: _Process) -> None:
        if process.state == _RETIRING:
            return
        process.state = _RETIRING
        self._send(process, {"op": "retire"})

    def _check_started(self, process: _Process) -> None:
        if process.state == _STARTING and process.pid in self.processes:
            log.error("%s not ready after %.0f s: killing it", process, STARTUP_LIMIT)
            _kill(process.pid, signal.SIGKILL)

    # ----------------------------------------------------------------- replacing

    def _recycle(self, process: _Process) -> None:
        if self.stopping or self.reloading:
            return
        log.info("%s reached max_requests: replacing it", process)
        new = self._spawn()
        if new is not None:
            process.doomed = True
            new.replacement_for = process

    def _reload(self) -> None:
        if self.stopping:
            return
        if self.reloading:
            log.warning("SIGHUP: a reload is already under way")
            return
        current = [p for p in self.processes.values() if p.state != _RETIRING]
        log.info("reloading: starting %d new processes", self.count)
        for process in current:
            process.doomed = True
        for _ in range(self.count):
            new = self._spawn()
            if new is None:
                self._abandon_reload("cannot fork")
                return
            self.reloading.append(new)

    def _abandon_reload(self, why: str) -> None:
        log.error("reload abandoned (%s): the running processes go on serving", why)
        for process in self.reloading:
            if process.pid in self.processes:
                self._stop_process(process)
        self.reloading = []
        for process in self.processes.values():
            if process.state == _SERVING:
                process.doomed = False

    def _stop_process(self, process: _Process) -> None:
        if process.state == _SERVING:
            self._retire(process)
        else:
            process.state = _RETIRING
            _kill(process.pid, signal.SIGTERM)

    def _schedule_restart(self) -> float:
        """Top up the processes after a back-off; returns the back-off."""
        now = monotonic()
        if now - self.last_death > BACKOFF_FORGET:
            self.failures = 0
        self.last_death = now
        delay: float = min(BACKOFF_MAX, BACKOFF_FIRST * 2.0**self.failures)
        self.failures += 1
        self.loop.call_later(delay, self._top_up)
        return delay

    def _top_up(self) -> None:
        standing = [p for p in self.processes.values() if p.state != _RETIRING and not p.doomed]
        if not self.stopping and len(standing) < self.count:
            self._spawn()

    # ----------------------------------------------------------------- exits

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            process = self.processes.pop(pid, None)
            if process is not None:
                self._on_exit(process, os.waitstatus_to_exitcode(status))

    def _on_exit(self, process: _Process, code: int) -> None:
        self.loop.unwatch(process.sock.fileno())
        process.sock.close()
        if process.last is not None:
            add_counters(self.retired, process.last)
        for round_ in list(self.rounds.values()):
            if process in round_.waiting:
                round_.waiting.discard(process)
                self._maybe_finish(round_)
        how = _describe(code)
        was_serving = process.state == _SERVING or process.final
        if self.stopping or process.state == _RETIRING:
            if code != 0 and was_serving:
                self.exit_code = 1
            log.info("%s %s after draining", process, how)
            return
        if process in self.reloading:
            self._abandon_reload(f"{process} {how} before it was ready")
            return
        if process.state == _STARTING and not self.ever_ready:
            log.error("%s %s before it was ready: giving up", process, how)
            self._stop(EXIT_APP_FAILED if code == EXIT_APP_FAILED else 1)
            return
        if process.doomed:
            return  # its replacement is serving or on its way
        delay = self._schedule_restart()
        log.warning("%s %s; starting another in %.1f s", process, how, delay)
        replacement = process.replacement_for
        if replacement is not None:
            replacement.doomed = False

    # ----------------------------------------------------------------- signals

    def _on_signal(self, signum: int) -> None:
        if signum == signal.SIGCHLD:
            self._reap()
        elif signum == signal.SIGHUP:
            self._reload()
        elif signum in (signal.SIGTERM, signal.SIGINT):
            if self.stopping:
                log.warning("second signal: the processes exit at once")
                self.exit_code = 1
                for process in self.processes.values():
                    _kill(process.pid, signal.SIGTERM)
                return
            log.info(
                "shutting down: draining %d processes for up to %.0f s",
                len(self.processes),
                self.config.drain_timeout,
            )
            self._stop(0)

    def _stop(self, code: int) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.exit_code = max(self.exit_code, code)
        if self.listener is not None:
            # New connections wait in a short queue while the processes take what is in it;
            # once the last process has closed its descriptor, they are refused. The
            # supervisor's own descriptor must not keep the socket open meanwhile: nobody
            # would accept what queues, and it would be reset at the end.
            with contextlib.suppress(OSError):
                self.listener.listen(0)
            self.listener.close()
        for process in self.processes.values():
            _kill(process.pid, signal.SIGTERM)
        self.loop.call_later(self.config.drain_timeout + KILL_MARGIN, self._kill_remaining)

    def _kill_remaining(self) -> None:
        for process in self.processes.values():
            log.error("%s still running past the drain time-out: killing it", process)
            _kill(process.pid, signal.SIGKILL)
            self.exit_code = 1

    # ----------------------------------------------------------------- snapshots

    def _heartbeat(self) -> None:
        now = monotonic()
        for process in list(self.processes.values()):
            if process.state != _STARTING and now - process.heard > SILENCE_LIMIT:
                log.error("%s answered nothing for %.0f s: killing it", process, SILENCE_LIMIT)
                _kill(process.pid, signal.SIGKILL)
        for listener in (self.admin, self.agent):
            if listener is not None:
                listener.expire(now)
        self._reap()  # in case a SIGCHLD was lost
        self.merged(False, lambda data: None)
        self.loop.call_later(HEARTBEAT, self._heartbeat)

    def merged(self, detail: bool, callback: Callable[[Snapshot], None]) -> None:
        """Ask every process for a snapshot; call back with them merged (within a second)."""
        asked = {p for p in self.processes.values() if p.state != _STARTING}
        round_id = next(self.round_ids)
        round_ = _Round(round_id, detail, set(asked), {}, [callback])
        self.rounds[round_id] = round_
        for process in asked:
            self._send(process, {"op": "snapshot", "id": round_id, "detail": detail})
        round_.timer = self.loop.call_later(ROUND_TIMEOUT, lambda: self._finish(round_id))
        self._maybe_finish(round_)

    def _on_part(self, round_id: object, process: _Process, data: Snapshot) -> None:
        round_ = self.rounds.get(round_id) if isinstance(round_id, int) else None
        if round_ is None or process not in round_.waiting:
            return
        round_.waiting.discard(process)
        round_.parts[process] = data
        self._maybe_finish(round_)

    def _maybe_finish(self, round_: _Round) -> None:
        if not round_.waiting and round_.id in self.rounds:
            self.loop.cancel(round_.timer)
            self._finish(round_.id)

    def _finish(self, round_id: int) -> None:
        round_ = self.rounds.pop(round_id, None)
        if round_ is None:
            return
        parts = dict(round_.parts)
        for process in round_.waiting:  # silent: its last snapshot stands in for it
            if process.last is not None and process.pid in self.processes:
                parts[process] = process.last
        data = merge(
            [(p.label, parts[p]) for p in sorted(parts, key=lambda p: p.number)],
            self.retired,
            uptime=monotonic() - self.started,
            draining=self.stopping,
        )
        for callback in round_.callbacks:
            callback(data)


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # exited already: SIGCHLD is on its way
        os.kill(pid, signum)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _url(listener: socket.socket, config: Config) -> str:
    if listener.family == socket.AF_UNIX:
        return f"unix:{listener.getsockname()}"
    host, port = listener.getsockname()[:2]
    scheme = "https" if config.certfile else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
