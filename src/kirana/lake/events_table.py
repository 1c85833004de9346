"""The ``events`` table: its schema and the projection from canonical JSON.

The projection runs inside DuckDB (vectorised C++, no Python per event): the
loader hands it the raw log payloads as one Arrow column and gets typed
columns back. Segment's common fields become typed columns; the free-form
objects (properties, traits, context, integrations) stay JSON text so nothing
an SDK sent is lost and no schema drift can break a load.
"""

from __future__ import annotations

import pyarrow as pa

TABLE = "events"
PARTITION_BY = ["event_date"]
TABLE_CONFIGURATION = {
    # file statistics only on columns that name no person: min/max of user_id in
    # the commit log would outlive an erasure of that user's rows
    "delta.dataSkippingStatsColumns": "type,event,source_id,timestamp,received_at,log_offset",
}

_TS = pa.timestamp("us", tz="UTC")

SCHEMA = pa.schema(
    [
        ("message_id", pa.string()),
        ("type", pa.string()),
        ("event", pa.string()),
        ("name", pa.string()),
        ("category", pa.string()),
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("group_id", pa.string()),
        ("previous_id", pa.string()),
        ("source_id", pa.string()),
        ("channel", pa.string()),
        ("timestamp", _TS),
        ("original_timestamp", _TS),
        ("sent_at", _TS),
        ("received_at", _TS),
        ("properties", pa.string()),
        ("traits", pa.string()),
        ("context", pa.string()),
        ("integrations", pa.string()),
        ("log_offset", pa.int64()),
        ("event_date", pa.date32()),
    ]
)

_TEXT_FIELDS = [
    ("message_id", "messageId"),
    ("type", "type"),
    ("event", "event"),
    ("name", "name"),
    ("category", "category"),
    ("user_id", "userId"),
    ("anonymous_id", "anonymousId"),
    ("group_id", "groupId"),
    ("previous_id", "previousId"),
    ("source_id", "sourceId"),
    ("channel", "channel"),
]
_TIME_FIELDS = [
    ("timestamp", "timestamp"),
    ("original_timestamp", "originalTimestamp"),
    ("sent_at", "sentAt"),
    ("received_at", "receivedAt"),
]
_JSON_FIELDS = ["properties", "traits", "context", "integrations"]


def projection_sql(relation: str) -> str:
    """SQL turning ``relation(log_offset BIGINT, raw VARCHAR)`` into the table's rows.

    Within one batch a messageId seen twice keeps its first (lowest offset)
    occurrence; duplicates across batches are the loader's job.
    """
    text_paths = [f"'$.{key}'" for _, key in _TEXT_FIELDS + _TIME_FIELDS]
    json_paths = [f"'$.{key}'" for key in _JSON_FIELDS]
    cols: list[str] = []
    for i, (col, _) in enumerate(_TEXT_FIELDS, start=1):
        cols.append(f"s[{i}] AS {col}")
    for i, (col, _) in enumerate(_TIME_FIELDS, start=len(_TEXT_FIELDS) + 1):
        cols.append(f"CAST(s[{i}] AS TIMESTAMPTZ) AS {col}")
    for i, col in enumerate(_JSON_FIELDS, start=1):
        cols.append(f"CAST(j[{i}] AS VARCHAR) AS {col}")
    cols.append("log_offset")
    cols.append("CAST(CAST(s[12] AS TIMESTAMPTZ) AS DATE) AS event_date")
    return (
        "SELECT " + ", ".join(cols) + " FROM ("
        f"SELECT log_offset, json_extract_string(raw, [{', '.join(text_paths)}]) AS s, "
        f"json_extract(raw, [{', '.join(json_paths)}]) AS j FROM {relation}"
        ") QUALIFY row_number() OVER (PARTITION BY message_id ORDER BY log_offset) = 1 "
        "ORDER BY log_offset"
    )
