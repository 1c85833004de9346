"""The port lock that keeps a second ``kirana serve`` off a port its API processes share."""

from __future__ import annotations

import os

import pytest

from kirana.process.replica import PortTaken, claim_port
from tests.conftest import free_port


def test_a_claimed_port_is_refused_with_its_owner_until_released() -> None:
    port = free_port()
    first = claim_port(port)
    try:
        with pytest.raises(PortTaken) as taken:
            claim_port(port)  # a second open file of the same lock, as another process has
        assert taken.value.port == port and taken.value.owner == str(os.getpid())
        assert f"pid {os.getpid()}" in str(taken.value)
        other = claim_port(free_port())  # other ports are not affected
        os.close(other)
    finally:
        os.close(first)
    os.close(claim_port(port))  # released with its descriptor (or its process)
