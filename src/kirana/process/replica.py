"""An extra API process (``kirana serve --api-processes N``): personalise on another core.

Why: one Python process answers about 700 personalise decisions a second on one core (the
interpreter lock); a second process on the same port roughly doubles that on two cores. The
kernel spreads new connections over every process listening with ``SO_REUSEPORT`` (by a hash
of the connection, so evenly; one listening socket shared by all would hand most connections
to whichever process the kernel wakes first — measured 45/19 and 59/5 of 64). Because any
process of the same user may join such a port, the first process also claims the port number
(:func:`claim_port`), so a second ``kirana serve`` there is refused.

What an extra process serves itself: ``GET /v1/personalize`` (it only reads stores: profiles,
content, statistics and recommendation lists are SQLite files every process opens) and
``GET /health``. Everything else — tracking, the management API, the docs — is relayed
unchanged to the first API process over a Unix socket (:mod:`kirana.api.relay`), because
that process owns the event log's writer and the consumer worker. What the extra process
must hand the first one goes over the supervisor's pipe: derived events (``emit``:
experiment exposures); its decision-log batches go to the spool the first process has
appended (:mod:`kirana.serving.decision_spool`). An erasure reaches it as ``forget``
(suppression list, profile cache, spooling queued decisions) before anything is deleted.

It is a child of the first API process, restarted by it like the consumer worker, and stops
when that process asks or goes away.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import uvicorn

from kirana.api.http_protocol import CoalescingHttpToolsProtocol
from kirana.config import Settings
from kirana.process.channel import Channel, ChannelClosed
from kirana.process.gc_tuning import tune_for_serving

log = logging.getLogger(__name__)


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP listener that shares ``host:port`` with the other API processes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class PortTaken(RuntimeError):
    """Another Kirana server of this user already serves the port."""

    def __init__(self, port: int, owner: str) -> None:
        super().__init__(f"port {port} is served by another kirana serve (pid {owner or '?'})")
        self.port, self.owner = port, owner


def claim_port(port: int) -> socket.socket | None:
    """Claim ``port`` for this process's API processes, whatever the host they listen on,
    or raise :class:`PortTaken`. The claim lasts as long as the socket returned is open (at
    the latest, the process); ``None`` where there is no way to claim (not Linux).

    ``SO_REUSEPORT`` lets any socket of the same user bind a port its API processes share, so
    a second ``kirana serve --api-processes 2`` started by mistake would bind without an error
    and take half the connections. The claim is a listening Unix socket in Linux's abstract
    namespace named after the user and the port: no file to plant a symlink under or to
    leave behind, scoped to the network namespace as the port is, gone with the process.
    Its owner's pid comes from the kernel (``SO_PEERCRED``) for the error message.
    """
    if not sys.platform.startswith("linux"):
        return None
    name = f"\0kirana-port-{os.getuid()}-{port}"
    claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        claim.bind(name)
    except OSError as exc:
        claim.close()
        if exc.errno != errno.EADDRINUSE:
            raise
        raise PortTaken(port, _claimed_by(name)) from None
    claim.listen(1)
    return claim


def _claimed_by(name: str) -> str:
    """The pid behind the claim ``name`` ("" if it cannot be asked)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1)
        probe.connect(name)
        creds = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return str(struct.unpack("3i", creds)[0])
    except OSError:
        return ""
    finally:
        probe.close()


def run_replica(
    settings_json: str, conn: Connection, log_level: int, index: int, primary_socket: str
) -> None:
    """Entry point of extra API process ``index`` (spawned, so it imports fresh)."""
    logging.basicConfig(
        level=log_level, format=f"%(asctime)s %(levelname)s [api-{index}] %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per relayed request
    # the first API process decides when we stop (it gets the signals and asks us)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from kirana.api.app import create_replica_app
    from kirana.runtime import Platform
    from kirana.serving.extension import personalization

    settings = Settings.model_validate_json(settings_json)
    sys.setswitchinterval(settings.gil_switch_ms / 1000)
    stopping = threading.Event()
    server: Any = None

    def stop(_: Any = None) -> None:
        stopping.set()
        if server is not None:
            server.should_exit = True

    handlers: dict[str, Any] = {"stop": stop, "ping": lambda _: os.getpid()}
    channel = Channel(conn, handlers, name=f"api-{index}")
    threading.Thread(
        target=lambda: (channel.wait_closed(), stop()), name="parent-watch", daemon=True
    ).start()
    platform = Platform.open(settings, role="replica", channel=channel)
    handlers["forget"] = lambda _: platform.forget_served()
    personalization(platform)  # open stores and fill caches before the first request
    app = create_replica_app(platform, primary_socket, index)
    sock = listening_socket(settings.host, settings.port)
    config = uvicorn.Config(
        app,
        log_level=logging.getLevelName(log_level).lower(),
        access_log=False,
        loop="uvloop",
        http=CoalescingHttpToolsProtocol,  # one write per response
        timeout_keep_alive=30,
    )
    server = _Server(config)
    if stopping.is_set():
        server.should_exit = True
    tune_for_serving(stopping)  # as in the first process (kirana.cli.serve)
    threading.Thread(target=_announce, args=(server, channel, platform), daemon=True).start()
    log.info("API process %d (pid %d) on %s:%d", index, os.getpid(), settings.host, settings.port)
    try:
        server.run(sockets=[sock])
    finally:
        platform.close()
        channel.close()
        sock.close()


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handling (the parent stops us over the pipe)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _announce(server: Any, channel: Channel, platform: Any) -> None:
    """Tell the supervisor we are up once the server accepts connections, then reload what
    an erasure changes: one that ran while we started (the supervisor's ``forget`` waits
    only so long for us) is seen now; later ones reach us as ``forget``."""
    while not server.started and not server.should_exit:
        time.sleep(0.05)
    if server.started:
        try:
            channel.call("ready", os.getpid())
        except ChannelClosed:
            server.should_exit = True
            return
        platform.forget_served()
