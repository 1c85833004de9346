"""File drops: CSV, Parquet or JSON-lines files arriving in a folder (vendor NPS data, exports).

* **Complete files only.** Names that writers use while writing (``.name``,
  ``_name``, ``*.tmp``, ``*.part``, ``*.partial``, ``*.crdownload``) are ignored
  until renamed in, and any file is left alone until it has not changed for
  ``settle_seconds``.
* **Each file once.** A file gets an arrival number (its position) in the state
  database before it is applied; that number is the Delta commit's ``txn``
  version, so a crash between the commit and marking the file applied cannot
  apply it twice. Files are remembered by name, size and SHA-256: the same
  content dropped again under another name is recorded as a duplicate and skipped.
* **Bad files moved aside.** A file that cannot be parsed or lacks the key goes to
  ``<folder>/_rejected/`` with ``<name>.reason.txt`` next to it, and its reason is in
  ``kirana sources status``.

Applied files stay where they are (the vendor's folder is theirs); the state
database says which were applied.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from kirana.replication.changes import DELETE, OP, SEQ, UPSERT, ChangeSet, TableSpec
from kirana.replication.protocol import Snapshot
from kirana.replication.specs import FilesConfig
from kirana.replication.state import ReplicationState

log = logging.getLogger(__name__)

REJECTED_DIR = "_rejected"
_WRITING_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp")
_EXTENSIONS = {
    "csv": (".csv", ".csv.gz", ".tsv"),
    "parquet": (".parquet", ".pq"),
    "jsonl": (".jsonl", ".ndjson", ".json", ".jsonl.gz", ".ndjson.gz", ".json.gz"),
}


class BadFile(ValueError):
    """A file that cannot be applied; the message is the reason recorded for it."""


def is_being_written(name: str) -> bool:
    """Whether the name is one writers use before renaming the finished file in."""
    return name.startswith((".", "_", "~")) or name.lower().endswith(_WRITING_SUFFIXES)


def read_rows(path: Path, file_format: str) -> pa.Table:
    """Parse one file into Arrow, or raise BadFile saying why."""
    if not path.name.lower().endswith(_EXTENSIONS[file_format]):
        allowed = ", ".join(_EXTENSIONS[file_format])
        raise BadFile(f"expected a {file_format} file ({allowed}), got {path.name!r}")
    try:
        if file_format == "csv":
            import pyarrow.csv as pcsv

            delimiter = "\t" if path.name.lower().endswith(".tsv") else ","
            return pcsv.read_csv(path, parse_options=pcsv.ParseOptions(delimiter=delimiter))
        if file_format == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        import pyarrow.json as pjson

        return pjson.read_json(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BadFile(f"cannot parse as {file_format}: {exc}") from exc


def to_changes(rows: pa.Table, spec: TableSpec, delete_column: str | None, seq: int) -> pa.Table:
    """Add the change columns to a file's rows, or raise BadFile (missing or null key, …)."""
    reserved = [c for c in rows.column_names if c.startswith("_kirana_")]
    if reserved:
        raise BadFile(f"column(s) {reserved} use the reserved prefix `_kirana_`")
    if rows.num_rows == 0:
        return rows.append_column(OP, pa.array([], pa.string())).append_column(
            SEQ, pa.array([], pa.int64())
        )
    needed = [*spec.key, *([spec.precombine] if spec.precombine else [])]
    missing = [c for c in needed if c not in rows.column_names]
    if missing:
        raise BadFile(
            f"missing column(s) {missing} (key {list(spec.key)}, precombine {spec.precombine!r});"
            f" the file has {rows.column_names}"
        )
    for key in spec.key:
        nulls = rows.column(key).null_count
        if nulls:
            raise BadFile(f"key column {key!r} is empty in {nulls} row(s)")
    if delete_column and delete_column in rows.column_names:
        flag = rows.column(delete_column)
        if not pa.types.is_boolean(flag.type):
            text = pc.utf8_lower(flag.cast(pa.string()))
            flag = pc.is_in(text, pa.array(["true", "1", "yes", "y", "t", "d", "delete"]))
        ops = pc.if_else(pc.fill_null(flag, False), DELETE, UPSERT)
        rows = rows.drop_columns([delete_column])
    else:
        ops = pa.array([UPSERT] * rows.num_rows, pa.string())
    return rows.append_column(OP, ops).append_column(
        SEQ, pa.array([seq] * rows.num_rows, pa.int64())
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class FileDropSource:
    """Applies each complete file in a folder once, oldest first, one commit per file."""

    def __init__(self, config: FilesConfig, state: ReplicationState) -> None:
        self.name = config.name
        self.config = config
        self.state = state
        self.folder = Path(config.path)
        self.spec = config.table_spec()

    def tables(self) -> list[TableSpec]:
        return [self.spec]

    def needs_snapshot(self) -> bool:
        return False

    def snapshot(self) -> Snapshot:  # pragma: no cover - never needed
        raise NotImplementedError("file drops have no snapshot")

    def _candidates(self) -> list[Path]:
        if not self.folder.is_dir():
            raise FileNotFoundError(
                f"source {self.name!r}: folder {self.folder} does not exist; create it or "
                f"fix the path (`kirana sources remove {self.name}` and add it again)"
            )
        settled = time.time() - self.config.settle_seconds
        found = []
        for path in self.folder.iterdir():
            if not path.is_file() or is_being_written(path.name):
                continue
            stat = path.stat()
            if stat.st_mtime > settled:
                continue  # still being written (or just landed): look again later
            if self.state.file_unchanged_since_seen(
                self.name, path.name, stat.st_size, stat.st_mtime
            ):
                continue
            found.append((stat.st_mtime, path.name, path))
        return [p for _, _, p in sorted(found)]

    def read(self, max_rows: int, wait_seconds: float) -> ChangeSet | None:
        pending = self.state.pending_file(self.name)
        if pending is not None and (self.folder / pending.name).is_file():
            path = self.folder / pending.name
            return self._load(path, pending.seq)
        if pending is not None:
            self.state.finish_file(
                pending.seq, "rejected", None, "file vanished before it was applied"
            )
        deadline = time.monotonic() + wait_seconds
        while True:
            for path in self._candidates():
                changes = self._take(path)
                if changes is not None:
                    return changes
            if time.monotonic() >= deadline:
                return None
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _take(self, path: Path) -> ChangeSet | None:
        digest = sha256_of(path)
        size = path.stat().st_size
        known = self.state.known_file(self.name, path.name, digest)
        if known is not None and known.name == path.name:
            return None
        seq = self.state.begin_file(self.name, path.name, digest, size)
        if known is not None:
            reason = f"same content as {known.name!r} (applied as file #{known.seq})"
            self.state.finish_file(seq, "duplicate", 0, reason)
            log.info("replication %s: skipped %s: %s", self.name, path.name, reason)
            return None
        return self._load(path, seq)

    def _load(self, path: Path, seq: int) -> ChangeSet | None:
        try:
            rows = to_changes(
                read_rows(path, self.config.format), self.spec, self.config.delete_column, seq
            )
        except BadFile as exc:
            self._reject(path, seq, str(exc))
            return None
        return ChangeSet(
            position=seq,
            tables={self.spec.name: rows},
            checkpoint={"file": path.name, "seq": seq},
            source_time=path.stat().st_mtime,
            transactions=1,
        )

    def _reject(self, path: Path, seq: int, reason: str) -> None:
        aside = self.folder / REJECTED_DIR
        aside.mkdir(exist_ok=True)
        target = aside / path.name
        if target.exists():
            target = aside / f"{seq}-{path.name}"
        shutil.move(path, target)
        target.with_name(target.name + ".reason.txt").write_text(reason + "\n")
        self.state.finish_file(seq, "rejected", None, reason)
        log.warning("replication %s: rejected %s: %s", self.name, path.name, reason)

    def reject_applied(self, changes: ChangeSet, reason: str) -> None:
        """The lake refused the file's rows (e.g. a type that does not fit): move it aside."""
        self._reject(self.folder / changes.checkpoint["file"], changes.position, reason)

    def confirm(self, changes: ChangeSet) -> None:
        self.state.finish_file(changes.position, "applied", changes.rows, None)

    def close(self) -> None:
        pass
