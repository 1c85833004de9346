"""The JetStream log on a 3-node cluster with ``log.nats_replicas = 3`` (the documented
production setup): acknowledged appends survive losing any one node."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kirana.eventlog.jetstream import JetStreamEventLog
from kirana.eventlog.protocol import LogUnavailable
from tests.eventlog.nats_server import cluster
from tests.eventlog.test_contract import eventually, read_all

pytestmark = pytest.mark.slow


def test_appends_acknowledged_by_a_quorum_survive_losing_a_node(tmp_path: Path) -> None:
    nodes = cluster(tmp_path)
    try:
        urls = ",".join(node.url for node in nodes)
        # the cluster elects its JetStream leader after the servers start: retry the open
        log = eventually(lambda: JetStreamEventLog(urls, replicas=3, ack_timeout=1.0), 60)
        with log:
            acknowledged = [
                (o, b"E%d" % i) for i in range(20) for o in log.append_sync([b"E%d" % i])
            ]
            nodes[0].kill()  # whichever role it had: stream leader, meta leader, our server
            retried: set[bytes] = set()  # refused while the cluster failed over
            deadline = time.monotonic() + 60
            for i in range(20, 40):
                payload = b"E%d" % i
                while True:
                    try:
                        (offset,) = log.append_sync([payload])
                        break
                    except LogUnavailable:
                        assert time.monotonic() < deadline, "the cluster did not recover"
                        retried.add(payload)
                        time.sleep(0.2)
                acknowledged.append((offset, payload))
            stored = eventually(lambda: read_all(log, log.start_offset), 60)
        acked = set(acknowledged)
        assert acked <= set(stored)  # every acknowledged append survived
        # a refused append may still have been stored (its ack lost): the client retried
        # it as a new message, which the lake's messageId index drops; nothing else extra
        assert {payload for offset, payload in stored if (offset, payload) not in acked} <= retried
    finally:
        for node in nodes:
            node.stop()
