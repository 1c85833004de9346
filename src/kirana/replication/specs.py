"""How a replication source is configured: one pydantic model per backend.

The same models validate ``kirana sources add-…`` options, API bodies and what
the state database holds, so a bad value gets the same message everywhere,
naming the field and the rule.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator

from kirana.redaction import redact, secrets_in
from kirana.replication.changes import TableSpec

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"


class TableConfig(BaseModel):
    """One table to replicate."""

    name: str = Field(min_length=1)
    """The source table, ``table`` or ``schema.table``."""
    key: list[str] = []
    """Record key columns; empty: the table's primary key."""
    precombine: str | None = None
    """Version column: a change with an older value never overwrites a newer row."""

    @field_validator("name")
    @classmethod
    def _plain(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) > 2 or not all(p.replace("_", "a").isalnum() for p in parts):
            raise ValueError("must be `table` or `schema.table` (letters, digits, underscores)")
        return value

    def lake_name(self, default_schema: str) -> str:
        """The table's name under ``lake/replicated/<source>/``."""
        schema, _, table = self.name.rpartition(".")
        return table if schema in ("", default_schema) else f"{schema}_{table}"


class _Base(BaseModel):
    name: str = Field(pattern=NAME_PATTERN)
    """Source name: lower-case letters, digits, underscores; tables appear as ``<name>_<table>``."""


def _log_ordered(tables: list[TableConfig]) -> list[TableConfig]:
    """Database changes are ordered by the log; a precombine column would drop deletes
    (they carry only the key) and is refused."""
    for table in tables:
        if table.precombine:
            raise ValueError(
                f"table {table.name!r}: `precombine` applies to file drops; database changes "
                "are ordered by their position in the log"
            )
    return tables


class PostgresConfig(_Base):
    """Snapshot, then logical replication with ``pgoutput``."""

    kind: Literal["postgres"] = "postgres"
    dsn: str = Field(min_length=1)
    """libpq connection string or URL; the user needs the REPLICATION attribute."""
    tables: list[TableConfig] = Field(min_length=1)
    slot: str = ""
    """Replication slot name (default ``kirana_<name>``)."""
    publication: str = ""
    """Publication name (default ``kirana_<name>``); created if missing."""

    @field_validator("tables")
    @classmethod
    def _ordered_by_log(cls, tables: list[TableConfig]) -> list[TableConfig]:
        return _log_ordered(tables)

    def slot_name(self) -> str:
        return self.slot or f"kirana_{self.name}"

    def publication_name(self) -> str:
        return self.publication or f"kirana_{self.name}"


class MySQLConfig(_Base):
    """Snapshot, then the row-based binlog (MySQL 8 / MariaDB 10.5+)."""

    kind: Literal["mysql"] = "mysql"
    dsn: str = Field(min_length=1)
    """``mysql://user:password@host:port/database``."""
    tables: list[TableConfig] = Field(min_length=1)
    server_id: int = Field(0, ge=0, lt=2**32)
    """Replica server id to announce (0: derived from the source name)."""

    @field_validator("tables")
    @classmethod
    def _ordered_by_log(cls, tables: list[TableConfig]) -> list[TableConfig]:
        return _log_ordered(tables)

    @field_validator("dsn")
    @classmethod
    def _url(cls, value: str) -> str:
        url = urlsplit(value)
        if url.scheme not in ("mysql", "mariadb") or not url.hostname or not url.path.strip("/"):
            raise ValueError("must look like mysql://user:password@host:3306/database")
        return value

    def connection(self) -> dict[str, Any]:
        """pymysql keyword arguments for the DSN."""
        url = urlsplit(self.dsn)
        return {
            "host": url.hostname,
            "port": url.port or 3306,
            "user": unquote(url.username or "root"),
            "password": unquote(url.password or ""),
        }

    def database(self) -> str:
        return urlsplit(self.dsn).path.strip("/")

    def replica_id(self) -> int:
        import zlib

        return self.server_id or 1_000_000 + zlib.crc32(self.name.encode()) % 1_000_000_000


class FilesConfig(_Base):
    """CSV, Parquet or JSON-lines files dropped into a folder."""

    kind: Literal["files"] = "files"
    path: str = Field(min_length=1)
    """The folder to watch."""
    format: Literal["csv", "parquet", "jsonl"]
    table: str = Field("data", pattern=r"^[a-z][a-z0-9_]{0,39}$")
    """Name of the lake table (``<source>_<table>`` in SQL)."""
    key: list[str] = Field(min_length=1)
    precombine: str | None = None
    delete_column: str | None = None
    """A column whose true value marks the row as a delete."""
    settle_seconds: float = Field(5.0, ge=0)
    """A file counts as complete once unchanged this long (or when renamed in)."""

    def table_spec(self) -> TableSpec:
        return TableSpec(self.table, tuple(self.key), self.precombine)


SourceConfig = Annotated[PostgresConfig | MySQLConfig | FilesConfig, Field(discriminator="kind")]
_ADAPTER: TypeAdapter[PostgresConfig | MySQLConfig | FilesConfig] = TypeAdapter(SourceConfig)


def parse_source_config(data: dict[str, Any]) -> PostgresConfig | MySQLConfig | FilesConfig:
    """Validate a source definition; ValueError names the first bad field and the rule."""
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if p not in ("postgres", "mysql", "files"))
        raise ValueError(f"`{where or 'source'}`: {first['msg']}") from exc


def redacted(config: PostgresConfig | MySQLConfig | FilesConfig) -> dict[str, Any]:
    """The definition with the DSN's credentials shown as ``***`` (listings, the API, the CLI).

    Host, port, user and database stay visible: they say where the source is.
    """
    data = config.model_dump()
    if data.get("dsn"):
        data["dsn"] = redact(data["dsn"])
    return data


def secret_values(config: PostgresConfig | MySQLConfig | FilesConfig) -> set[str]:
    """The credentials a definition holds, to scrub from error texts by value."""
    dsn = getattr(config, "dsn", "")
    return secrets_in(dsn) if dsn else set()
