"""The audit middleware on the real app: a change that crashes half-way is recorded too
(it may have changed something), with status 500 and who tried."""

from __future__ import annotations

from fastapi.testclient import TestClient

from kirana.api.app import create_app
from kirana.api.deps import AdminDep
from tests.conftest import RunningKirana


def test_a_crashing_change_is_recorded_with_500(kirana: RunningKirana) -> None:
    app = create_app(kirana.platform, manage_lifecycle=False)
    changed: list[str] = []

    def half_done(_: AdminDep) -> None:
        changed.append("first half")
        raise RuntimeError("the second half failed")

    app.add_api_route("/v1/half-done/{name}", half_done, methods=["POST"])
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post(
            "/v1/half-done/x",
            json={"password": "hunter2hunter2"},
            headers={"Authorization": f"Bearer {kirana.admin_token}"},
        )
    assert answer.status_code == 500 and changed == ["first half"]
    [entry] = kirana.platform.store.list_audit()
    assert (entry.action, entry.target, entry.status, entry.actor_name) == (
        "POST /v1/half-done/{name}",
        "x",
        500,
        "admin",
    )
    assert entry.summary["body"] == {"password": "***"}
