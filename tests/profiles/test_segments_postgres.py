"""The computed-trait and audience end-to-end tests again, on the PostgreSQL profile store.

Same tests (imported), different ``settings``: profiles, segment definitions,
computed values, memberships and history live in a throwaway PostgreSQL schema.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kirana.config import Settings, load_settings
from tests.identity.conftest import POSTGRES_DSN, postgres_reason
from tests.profiles.test_segments_e2e import (  # noqa: F401 - collected here with these settings
    test_a_merge_carries_traits_computed_traits_and_memberships,
    test_invalid_definitions_name_the_part,
    test_realtime_entry_and_incremental_refresh,
    test_traits_and_audiences_refresh_and_show_on_profiles,
)

pytestmark = pytest.mark.server


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    reason = postgres_reason()
    if reason:
        pytest.skip(reason)
    import psycopg

    schema = f"test_seg_{uuid.uuid4().hex[:12]}"
    yield load_settings(
        tmp_path / "data",
        lake={"linger_seconds": 0.2},
        profiles={"backend": "postgres", "postgres_dsn": POSTGRES_DSN, "postgres_schema": schema},
    )
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchone()
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    assert tables is not None and tables[0] > 0, "the test must have used PostgreSQL"
