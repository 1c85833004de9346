"""``kirana serve``: the HTTP API and the collector, with the consumers in a worker process."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import tempfile
import threading
from typing import Annotated

import typer

from kirana.cli.options import DataDir, fail


def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Interface to listen on \\[default: 127.0.0.1].", show_default=False),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on \\[default: 8000].", show_default=False)
    ] = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Load the demo data through the API once the server is up (once per data dir).",
        ),
    ] = False,
    demo_users: Annotated[
        int | None,
        typer.Option(help="With --demo: how many users to simulate \\[default: all 593]."),
    ] = None,
    api_processes: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Processes answering HTTP on the port (more = more personalise requests/s on "
            "more cores; tracking always goes through the first) \\[default: api_processes "
            "setting, 1].",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    data_dir: DataDir = None,
) -> None:
    """Start Kirana on its embedded default (no other servers needed)."""
    from kirana.config import load_settings
    from kirana.runtime import Platform

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the demo loader's requests
    settings = load_settings(data_dir, host=host, port=port)
    if api_processes is not None:
        settings.api_processes = api_processes
    sys.setswitchinterval(settings.gil_switch_ms / 1000)
    port_claim = None
    if settings.api_processes > 1 and settings.port:  # before anything is opened or bound
        port_claim = _claim_port(settings.host, settings.port)
    elif settings.port:
        _check_port_free(settings.host, settings.port)
    try:
        platform = Platform.open(settings, role="api" if settings.worker_process else "all")
    except OSError as exc:
        raise fail(f"cannot open {settings.data_dir}: {exc}") from exc
    sockets = None
    if settings.api_processes > 1:
        sockets = _shared_sockets(settings.host, settings.port)
        if port_claim is None:  # --port 0: claimed once the kernel has chosen
            port_claim = _claim_port(settings.host, sockets[0].getsockname()[1])
        settings.port = sockets[0].getsockname()[1]  # the port bound (--port 0: a free one)
    relay_path = sockets[1].getsockname() if sockets else None  # uvicorn closes the sockets
    try:
        _run(settings, platform, sockets, demo, demo_users, log_level)
    finally:
        for sock in sockets or ():
            sock.close()
        if port_claim is not None:
            port_claim.close()
        if relay_path:
            with contextlib.suppress(OSError):
                os.unlink(relay_path)
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(relay_path))


def _run(settings, platform, sockets, demo: bool, demo_users: int | None, log_level: str) -> None:
    """Serve until stopped (with ``sockets``: the shared listener and the relay socket)."""
    import uvicorn

    from kirana.api.app import create_app
    from kirana.api.http_protocol import CoalescingHttpToolsProtocol
    from kirana.process.gc_tuning import tune_for_serving

    if sockets:
        platform.add_api_replicas(settings.api_processes - 1, sockets[1].getsockname())
    app = create_app(platform)
    tune_for_serving()  # no full GC passes over the caches (kirana.process.gc_tuning)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level.lower(),
        access_log=False,
        loop="uvloop",
        http=CoalescingHttpToolsProtocol,  # one write per response
        timeout_keep_alive=30,
    )
    server = _server_class()(config)
    if demo:
        threading.Thread(
            target=_load_demo_when_up, args=(server, platform, demo_users), daemon=True
        ).start()
    url = f"http://{settings.host}:{settings.port}"
    processes = f", {settings.api_processes} API processes" if sockets else ""
    typer.echo(
        f"Kirana on {url} (console at {url}/console, API docs at {url}/docs), "
        f"data in {settings.data_dir}{processes}"
    )
    server.run(sockets=sockets)


def _how_to_choose_another_port(host: str, port: int) -> str:
    return (
        f"cannot listen on {host}:{port}: the port is in use (another Kirana?); stop it or "
        f"choose another port with --port {port + 1} or KIRANA_PORT={port + 1}"
    )


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on before opening anything, with what to do
    instead (uvicorn's own message comes after start-up and names no way out)."""
    import errno

    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
        probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise fail(_how_to_choose_another_port(host, port)) from None
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    finally:
        probe.close()


def _claim_port(host: str, port: int) -> socket.socket | None:
    """``claim_port``, its refusals as CLI errors."""
    from kirana.process.replica import PortTaken, claim_port

    try:
        return claim_port(port)
    except PortTaken as exc:
        raise fail(f"{_how_to_choose_another_port(host, port)} ({exc})") from None
    except OSError as exc:
        raise fail(f"cannot claim port {port} for the API processes: {exc}") from exc


def _shared_sockets(host: str, port: int) -> list[socket.socket]:
    """The TCP listener, shared with the extra API processes (``SO_REUSEPORT``), and a
    private Unix socket on which they relay what they do not answer."""
    from kirana.process.replica import listening_socket

    try:
        tcp = listening_socket(host, port)
    except OSError as exc:
        import errno

        if exc.errno == errno.EADDRINUSE:
            raise fail(_how_to_choose_another_port(host, port)) from None
        raise fail(f"cannot listen on {host}:{port}: {exc}") from exc
    directory = tempfile.mkdtemp(prefix="kirana-api-")
    os.chmod(directory, 0o700)  # only this user's processes may relay requests
    path = os.path.join(directory, "api.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(path)
    unix.listen(2048)
    return [tcp, unix]


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, but a shutdown on SIGTERM/SIGINT exits 0.

        uvicorn re-raises the signal after its graceful shutdown, so the
        process died with -15 even though every request and consumer had
        finished cleanly; supervisors then report a crash.
        """

        def handle_exit(self, sig, frame) -> None:
            super().handle_exit(sig, frame)
            self._captured_signals.clear()

        async def shutdown(self, sockets=None) -> None:
            # the extra API processes first: they relay to this one until they have stopped
            import asyncio

            platform = self.config.app.state.platform
            if platform.replicas:
                await asyncio.to_thread(lambda: [r.stop() for r in platform.replicas])
            await super().shutdown(sockets=sockets)

    return Server


def _load_demo_when_up(server, platform, users: int | None) -> None:
    import time

    from kirana.demo.loader import load_demo_once

    while not server.started:
        if server.should_exit:
            return
        time.sleep(0.1)
    url = f"http://{platform.settings.host}:{platform.settings.port}"
    load_demo_once(platform, url, users=users, should_stop=lambda: server.should_exit)
