"""Replication through the HTTP API of a running Kirana, and the job inside ``kirana serve``."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.slow


def test_file_source_over_the_api(kirana, tmp_path):
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "one.csv").write_text("id,score\n1,5\n2,6\n")
    admin = {"Authorization": f"Bearer {kirana.admin_token}"}
    viewer = {"Authorization": f"Bearer {kirana.viewer_token}"}
    definition = {
        "kind": "files",
        "name": "vendor",
        "path": str(drops),
        "format": "csv",
        "key": ["id"],
        "settle_seconds": 0,
    }
    with kirana.client() as http:
        assert (
            http.post("/v1/replication/sources", json=definition, headers=viewer).status_code == 403
        )
        bad = http.post(
            "/v1/replication/sources", json={**definition, "format": "xml"}, headers=admin
        )
        assert bad.status_code == 422 and "format" in bad.json()["message"]
        created = http.post("/v1/replication/sources", json=definition, headers=admin)
        assert created.status_code == 201, created.text
        again = http.post("/v1/replication/sources", json=definition, headers=admin)
        assert again.status_code == 409
        synced = http.post("/v1/replication/sources/vendor/sync", headers=admin)
        assert synced.status_code == 200, synced.text
        assert synced.json()["rows"] == 2
        status = http.get("/v1/replication/sources/vendor", headers=admin).json()
        assert status["tables"]["data"]["sql_name"] == "vendor_data"
        assert [f["state"] for f in status["files"]] == ["applied"]
        changes = http.get(
            "/v1/replication/sources/vendor/tables/data/changes", headers=admin
        ).json()
        assert sorted(r["id"] for r in changes["rows"]) == [1, 2]
        since = changes["next_since"]
        (drops / "two.csv").write_text("id,score\n2,60\n")
        # the replication job inside the server picks the new file up by itself
        deadline = time.monotonic() + 30
        while kirana.lake("SELECT score FROM vendor_data WHERE id = 2") != [(60,)]:
            assert time.monotonic() < deadline, "the serve job did not apply the dropped file"
            time.sleep(0.2)
        later = http.get(
            f"/v1/replication/sources/vendor/tables/data/changes?since={since}", headers=admin
        ).json()
        assert [(r["_change_type"], r["id"], r["score"]) for r in later["rows"]] == [
            ("update_postimage", 2, 60)
        ]
        listed = http.get("/v1/replication/sources", headers=admin).json()
        assert [s["name"] for s in listed] == ["vendor"]
        assert http.delete("/v1/replication/sources/vendor", headers=admin).status_code == 204
        assert http.get("/v1/replication/sources/vendor", headers=admin).status_code == 404
