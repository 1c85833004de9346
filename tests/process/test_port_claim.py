"""The claim that keeps a second ``kirana serve`` off a port its API processes share."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kirana.process.replica import PortTaken, claim_port
from tests.conftest import free_port

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the claim is a Linux abstract socket"
)


def test_a_claimed_port_is_refused_naming_its_owner_until_released() -> None:
    port = free_port()
    first = claim_port(port)
    assert first is not None
    try:
        with pytest.raises(PortTaken) as taken:
            claim_port(port)
        assert taken.value.port == port and taken.value.owner == str(os.getpid())
        assert f"pid {os.getpid()}" in str(taken.value)
        other = claim_port(free_port())  # other ports are not affected
        assert other is not None
        other.close()
    finally:
        first.close()
    again = claim_port(port)  # released with its socket
    assert again is not None
    again.close()


def test_another_process_sees_the_claim_and_it_ends_with_that_process() -> None:
    port = free_port()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from kirana.process.replica import claim_port; "
            f"c = claim_port({port}); print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(PortTaken) as taken:
            claim_port(port)
        assert taken.value.owner == str(holder.pid)
    finally:
        holder.kill()  # no clean-up runs: the kernel drops the claim with the process
        holder.wait()
    claim = claim_port(port)
    assert claim is not None
    claim.close()
