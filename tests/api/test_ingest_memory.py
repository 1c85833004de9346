"""An unauthenticated 512 MB POST or a gzip bomb costs the server a few MB, not the body.

A real uvicorn server runs in a subprocess and its resident memory is read from /proc:
the peak (VmHWM, reset through ``clear_refs`` just before the request) may grow by at
most 32 MB while a client streams 512 MB at it. The bodies are generated lazily, so the
test holds no more than one chunk either. Memory, not time, is what is asserted.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

CHUNK = 64 * 1024
HUGE = 512 * 1024 * 1024
MAX_GROWTH = 32 * 1024 * 1024

SERVER = textwrap.dedent(
    """
    import sys, uvicorn
    from kirana.api.app import create_app
    from kirana.config import load_settings
    from kirana.runtime import Platform

    platform = Platform.open(load_settings(sys.argv[1]), role="all")
    made = platform.store.create_source("mem")  # (source, key) once keys are stored hashed
    print(made[1] if isinstance(made, tuple) else made.write_key, flush=True)
    uvicorn.run(create_app(platform), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    """
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int, str]]:
    data = tmp_path_factory.mktemp("memory") / "data"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(data), str(port)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        write_key = proc.stdout.readline().strip()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, "the server exited"
                time.sleep(0.1)
        yield proc.pid, port, write_key
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def _post(port: int, headers: dict[str, str], body: Iterator[bytes]) -> tuple[int, int]:
    """Stream ``body`` until the server answers; (status, bytes sent)."""
    head = "POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head.encode())
        chunked = headers.get("Transfer-Encoding") == "chunked"
        for piece in body:
            if select.select([sock], [], [], 0)[0]:
                break  # answered before the end
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        answer = sock.recv(4096)
    return int(answer.split(b" ", 2)[1]), sent


def _measure(pid: int, port: int, headers: dict[str, str], body: Iterator[bytes]):
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS := current RSS
    before = _status(pid, "VmRSS")
    status, sent = _post(port, headers, body)
    return status, sent, _status(pid, "VmHWM") - before


def _zeros(total: int) -> Iterator[bytes]:
    block = b" " * CHUNK
    for _ in range(total // CHUNK):
        yield block


def _gzip_bomb(total: int) -> Iterator[bytes]:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    yield packer.compress(b'{"batch": [')
    block = b" " * (1024 * 1024)
    for _ in range(total // len(block)):
        out = packer.compress(block)
        if out:
            yield out
    yield packer.flush()


@pytest.fixture
def warm(server) -> tuple[int, int, str]:
    _pid, port, key = server  # the first request imports and allocates what any will need
    status, _ = _post(port, {"X-Write-Key": key, "Content-Length": "12"}, iter([b'{"batch":[]}']))
    assert status == 200
    return server


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
@pytest.mark.parametrize(
    ("name", "headers", "expected"),
    [
        ("chunked, no key", {"Transfer-Encoding": "chunked"}, 413),
        ("declared 512 MB, no key", {"Content-Length": str(HUGE)}, 413),
        ("unknown key", {"Transfer-Encoding": "chunked", "X-Write-Key": "wk_nope"}, 401),
    ],
)
def test_an_unauthenticated_512_mb_post_costs_a_few_mb(warm, name, headers, expected) -> None:
    pid, port, _ = warm
    status, sent, growth = _measure(pid, port, headers, _zeros(HUGE))
    assert status == expected, name
    assert sent < 64 * 1024 * 1024, f"{name}: the server read {sent} bytes before answering"
    assert growth < MAX_GROWTH, f"{name}: peak RSS grew by {growth / 2**20:.1f} MB"


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_a_gzip_bomb_with_a_valid_key_is_refused_while_it_inflates(warm) -> None:
    pid, port, key = warm
    headers = {"Transfer-Encoding": "chunked", "X-Write-Key": key, "Content-Encoding": "gzip"}
    status, _, growth = _measure(pid, port, headers, _gzip_bomb(HUGE))
    assert status == 413
    assert growth < MAX_GROWTH, f"peak RSS grew by {growth / 2**20:.1f} MB"
