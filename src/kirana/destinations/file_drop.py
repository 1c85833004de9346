"""File drops: records collected into CSV or Parquet files, rotated by size or age.

Records are first appended to a staging file (JSON lines, fsync'd) — that is
the moment they count as delivered. Rotation converts the staging file into
the final format under a temporary name, fsyncs it and renames it into place
atomically, so a reader of the folder never sees a half-written file. The
final name comes from the staging file's name, so a crash between the rename
and removing the staging file just redoes the same rename on restart.
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from kirana.destinations.config import FileDropSettings
from kirana.destinations.errors import RetryableError
from kirana.destinations.records import OutboundRecord

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
FIXED_COLUMNS = ["idempotency_key", "action", "key", "collection"]


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """One flat row: the fixed columns, then each data field (nested values as JSON)."""
    row = {c: record[c] for c in FIXED_COLUMNS}
    for name, value in record["data"].items():
        column = name if name not in row else f"data_{name}"
        row[column] = _encode(value).decode() if isinstance(value, dict | list) else value
    return row


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileDropDestination:
    def __init__(self, settings: FileDropSettings) -> None:
        self._s = settings
        self._dir = Path(settings.directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        for leftover in sorted(self._dir.glob(f".{settings.prefix}-*.staging.jsonl")):
            self._finalise(leftover)

    def _staging(self) -> Path | None:
        found = sorted(self._dir.glob(f".{self._s.prefix}-*.staging.jsonl"))
        return found[0] if found else None

    def deliver(self, records: Sequence[OutboundRecord]) -> None:
        staging = self._staging()
        if staging is None:
            staging = self._dir / f".{self._s.prefix}-{time.time_ns() // 1000}.staging.jsonl"
        payload = b"".join(_encode(r.wire()) + b"\n" for r in records)
        try:
            with open(staging, "ab") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise RetryableError(f"cannot write {staging}: {exc}", outage=True) from exc
        self._rotate_if_due(staging)

    def _rotate_if_due(self, staging: Path) -> None:
        started = int(staging.name.split("-")[-1].split(".")[0]) / 1e6
        if (
            staging.stat().st_size >= self._s.rotate_bytes
            or time.time() - started >= self._s.rotate_seconds
        ):
            self._finalise(staging)

    def _finalise(self, staging: Path) -> Path | None:
        lines = staging.read_bytes().splitlines()
        if not lines:
            staging.unlink()
            return None
        rows = [flatten(_decode(line)) for line in lines if line.strip()]
        stem = staging.name[1:].removesuffix(".staging.jsonl")
        final = self._dir / f"{stem}.{self._s.format}"
        tmp = self._dir / f".{stem}.{self._s.format}.tmp"
        if self._s.format == "csv":
            tmp.write_bytes(_csv(rows))
        else:
            _write_parquet(rows, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        _fsync_dir(self._dir)
        staging.unlink()
        return final

    def idle(self) -> None:
        staging = self._staging()
        if staging is not None:
            self._rotate_if_due(staging)

    def close(self) -> None:
        pass


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=_columns(rows), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = _columns(rows)
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types in a column: keep them as text
        table = pa.Table.from_pylist(
            [{c: None if r.get(c) is None else str(r.get(c)) for c in columns} for r in rows]
        )
    pq.write_table(table.select(columns), path)
