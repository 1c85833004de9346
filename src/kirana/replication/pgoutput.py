"""Decoder for PostgreSQL's ``pgoutput`` logical replication protocol (version 1). No I/O.

Every message is one byte of type then big-endian fields; strings end with a
NUL byte. See "Logical Replication Message Formats" in the PostgreSQL manual.
Tuple values arrive in text format (what ``SELECT col::text`` gives), so the
snapshot and the stream share one text-to-Arrow conversion (:mod:`pgtypes`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class _Unchanged:
    """A TOASTed value the update did not touch: PostgreSQL does not resend it."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()
Value = str | bytes | None | _Unchanged


class ProtocolError(ValueError):
    pass


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    is_key: bool


@dataclass(frozen=True)
class Relation:
    oid: int
    namespace: str
    name: str
    replica_identity: str
    """``d`` default (primary key), ``f`` full, ``i`` index, ``n`` nothing."""
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time: datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


@dataclass(frozen=True)
class Insert:
    relation_oid: int
    new: tuple[Value, ...]


@dataclass(frozen=True)
class Update:
    relation_oid: int
    old_kind: str | None
    """``K`` (old key columns), ``O`` (old row, REPLICA IDENTITY FULL) or None."""
    old: tuple[Value, ...] | None
    new: tuple[Value, ...]


@dataclass(frozen=True)
class Delete:
    relation_oid: int
    old_kind: str
    old: tuple[Value, ...]


@dataclass(frozen=True)
class Truncate:
    options: int
    relation_oids: tuple[int, ...]


@dataclass(frozen=True)
class Other:
    """Origin, Type and logical-decoding messages: nothing to apply."""

    kind: str


Message = Begin | Commit | Relation | Insert | Update | Delete | Truncate | Other


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.at = 0

    def take(self, n: int) -> memoryview:
        if self.at + n > len(self.data):
            raise ProtocolError(f"message ends early: wanted {n} bytes at offset {self.at}")
        part = self.data[self.at : self.at + n]
        self.at += n
        return part

    def int8(self) -> int:
        return self.take(1)[0]

    def int16(self) -> int:
        return struct.unpack(">h", self.take(2))[0]

    def int32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def uint32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def int64(self) -> int:
        return struct.unpack(">q", self.take(8))[0]

    def lsn(self) -> int:
        return struct.unpack(">Q", self.take(8))[0]

    def char(self) -> str:
        return chr(self.int8())

    def string(self) -> str:
        end = bytes(self.data[self.at :]).find(b"\0")
        if end < 0:
            raise ProtocolError(f"string at offset {self.at} has no terminating NUL")
        value = bytes(self.take(end)).decode()
        self.at += 1
        return value

    def time(self) -> datetime:
        return PG_EPOCH + timedelta(microseconds=self.int64())

    def tuple(self) -> tuple[Value, ...]:
        values: list[Value] = []
        for _ in range(self.int16()):
            kind = self.char()
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED)
            elif kind == "t":
                values.append(bytes(self.take(self.int32())).decode())
            elif kind == "b":
                values.append(bytes(self.take(self.int32())))
            else:
                raise ProtocolError(f"unknown tuple value kind {kind!r}")
        return tuple(values)


def decode(data: bytes) -> Message:
    """One pgoutput message; ProtocolError when it is malformed."""
    if not data:
        raise ProtocolError("empty message")
    r = _Reader(data)
    kind = r.char()
    if kind == "B":
        return Begin(r.lsn(), r.time(), r.uint32())
    if kind == "C":
        return Commit(r.int8(), r.lsn(), r.lsn(), r.time())
    if kind == "R":
        oid, namespace, name, identity = r.uint32(), r.string(), r.string(), r.char()
        columns = []
        for _ in range(r.int16()):
            flags = r.int8()
            columns.append(Column(r.string(), r.uint32(), r.int32(), bool(flags & 1)))
        return Relation(oid, namespace, name, identity, tuple(columns))
    if kind == "I":
        oid = r.uint32()
        if r.char() != "N":
            raise ProtocolError("insert without a new tuple")
        return Insert(oid, r.tuple())
    if kind == "U":
        oid = r.uint32()
        marker = r.char()
        old_kind, old = None, None
        if marker in ("K", "O"):
            old_kind, old = marker, r.tuple()
            marker = r.char()
        if marker != "N":
            raise ProtocolError(f"update without a new tuple (got {marker!r})")
        return Update(oid, old_kind, old, r.tuple())
    if kind == "D":
        oid = r.uint32()
        old_kind = r.char()
        if old_kind not in ("K", "O"):
            raise ProtocolError(f"delete with unknown old tuple kind {old_kind!r}")
        return Delete(oid, old_kind, r.tuple())
    if kind == "T":
        count, options = r.int32(), r.int8()
        return Truncate(options, tuple(r.uint32() for _ in range(count)))
    if kind in ("O", "Y", "M"):
        return Other(kind)
    raise ProtocolError(f"unknown pgoutput message type {kind!r}")


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)
