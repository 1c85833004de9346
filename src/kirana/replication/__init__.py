"""Source replication: databases and file drops land in Delta tables under ``lake/replicated``.

Every backend (PostgreSQL logical replication, the MySQL/MariaDB binlog, file
drops) implements :class:`~kirana.replication.protocol.ReplicationSource`; the
:class:`~kirana.replication.sync.Replicator` drives any of them into
:class:`~kirana.replication.lake.ReplicatedTable` s with upsert by key, ordering
by a version column, deletes, added columns and a change data feed.
"""

from kirana.replication.changes import DELETE, OP, SEQ, UPSERT, TableSpec
from kirana.replication.lake import ReplicatedTable, changes_since
from kirana.replication.specs import SourceConfig, parse_source_config

__all__ = [
    "DELETE",
    "OP",
    "SEQ",
    "UPSERT",
    "ReplicatedTable",
    "SourceConfig",
    "TableSpec",
    "changes_since",
    "parse_source_config",
]
