"""Plugs delivery into the platform (listed in ``runtime.EXTENSIONS``).

Registers the router consumer (event log -> queues) and a supervisor job that
keeps one deliverer thread per destination. All shared state is in the
delivery store, so the API process and a worker process cooperate through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kirana.destinations.router import DestinationRouter
from kirana.destinations.store import DeliveryStore, store_path
from kirana.destinations.supervisor import Supervisor

if TYPE_CHECKING:
    from kirana.runtime import Platform

SUPERVISE_SECONDS = 1.0


def delivery_store(platform: Platform) -> DeliveryStore:
    """This process's handle on the delivery store."""
    path = store_path(platform.settings.state_dir)
    return platform.service("delivery-store", lambda: DeliveryStore(path))


def attach(platform: Platform) -> None:
    store = delivery_store(platform)
    platform.add_consumer(DestinationRouter(platform.log, store))
    supervisor = Supervisor(store, platform.emit)
    platform.services["destination-supervisor"] = supervisor
    platform.schedule("destinations", SUPERVISE_SECONDS, supervisor.tick)
    platform.on_close(supervisor.stop)
