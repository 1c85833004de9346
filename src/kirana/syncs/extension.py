"""Plugs scheduled syncs into the platform (listed in ``runtime.EXTENSIONS``).

One job checks every few seconds which syncs are due (their schedule lives in
the delivery store, so syncs created through the API are picked up without a
restart) and runs them; their changes flow out through the destinations'
deliverers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kirana.destinations.extension import delivery_store
from kirana.syncs.service import runner

if TYPE_CHECKING:
    from kirana.runtime import Platform

CHECK_SECONDS = 5.0


def attach(platform: Platform) -> None:
    sync_runner = runner(platform.settings, delivery_store(platform))
    platform.schedule("syncs", CHECK_SECONDS, sync_runner.run_due)
