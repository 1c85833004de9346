"""The read side of the segment log, as the consumer worker process uses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from kirana.eventlog.protocol import LogUnavailable
from kirana.eventlog.reader import FileLogReader
from kirana.eventlog.segments import FileEventLog


def payloads(n: int, start: int = 0) -> list[bytes]:
    return [f'E{{"n": {i}}}'.encode() for i in range(start, start + n)]


def append_each(writer: FileEventLog, items: list[bytes]) -> None:
    """One append per record, so a small segment size rolls often (rolls are per batch)."""
    for item in items:
        writer.append_sync([item])


def read_all(reader: FileLogReader, offset: int) -> tuple[list[bytes], int]:
    out: list[bytes] = []
    while True:
        result = reader.read(offset, 7)
        out.extend(r.payload for r in result.records)
        if result.next_offset == offset:
            return out, offset
        offset = result.next_offset


def test_reader_sees_exactly_what_the_writer_made_durable(tmp_path: Path) -> None:
    writer = FileEventLog(tmp_path, segment_bytes=200)  # rolls every few records
    reader = FileLogReader(tmp_path)
    assert reader.end_offset == writer.end_offset == 0
    writer.append_sync(payloads(10))
    assert reader.end_offset == writer.end_offset
    got, offset = read_all(reader, reader.start_offset)
    assert got == payloads(10)
    assert not reader.wait_for(offset, 0.05)  # nothing new
    append_each(writer, payloads(25, start=10))  # several more segments
    assert reader.wait_for(offset, 1.0)
    more, end = read_all(reader, offset)
    assert more == payloads(25, start=10)
    assert end == writer.end_offset
    assert len(list(tmp_path.glob("*.seg"))) > 3
    reader.close()
    writer.close()


def test_reader_never_reads_past_the_published_end(tmp_path: Path) -> None:
    writer = FileEventLog(tmp_path)
    writer.append_sync(payloads(3))
    end = writer.end_offset
    writer.close()
    # bytes written but never published as durable (a writer that died before its fsync)
    segment = next(tmp_path.glob("*.seg"))
    with open(segment, "ab") as f:
        f.write(b"\x05\x00\x00\x00garbage-not-durable")
    reader = FileLogReader(tmp_path)
    assert reader.end_offset == end
    assert [r.payload for r in reader.read(0, 100).records] == payloads(3)
    reader.close()


def test_retention_in_the_reader_process_leaves_the_writer_working(tmp_path: Path) -> None:
    writer = FileEventLog(tmp_path, segment_bytes=150)
    append_each(writer, payloads(30))
    reader = FileLogReader(tmp_path)
    _, end = read_all(reader, 0)
    freed = reader.trim(end)
    assert freed > 0
    assert reader.start_offset == writer.start_offset > 0
    # the writer's redaction skips the deleted segments and still finds live records
    assert writer.redact(lambda p: p.endswith(b"29}")) == 1
    writer.append_sync(payloads(1, start=30))
    assert reader.wait_for(end, 1.0)
    got, _ = read_all(reader, reader.start_offset)
    assert got[-1] == payloads(1, start=30)[0]
    assert got[-2].startswith(b"D")
    reader.close()
    writer.close()


def test_reader_refuses_to_append(tmp_path: Path) -> None:
    writer = FileEventLog(tmp_path)
    reader = FileLogReader(tmp_path)
    with pytest.raises(LogUnavailable, match="only reads"):
        reader.append_sync([b"Ex"])
    reader.close()
    writer.close()


def test_reader_needs_a_writer_first(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="start the log's writer"):
        FileLogReader(tmp_path)
