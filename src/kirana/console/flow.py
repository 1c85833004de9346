"""Post/redirect/get: after a change the browser is sent back to a page with a notice.

The notice travels as a code and an object name in the query string; its wording comes
from :data:`NOTICES`, so a crafted link cannot put arbitrary sentences on a page.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse

NOTICES = {
    "source_created": "Source {name} created.",
    "source_disabled": "Source {name} disabled: its events are refused (403) until enabled.",
    "source_enabled": "Source {name} enabled: its events are accepted again.",
    "audience_saved": "Audience {name} saved.",
    "trait_saved": "Computed trait {name} saved.",
    "experiment_created": "Experiment {name} created as a draft.",
    "experiment_started": "Experiment {name} started: users are assigned from now on.",
    "experiment_stopped": "Experiment {name} stopped: nobody is assigned any more.",
    "flag_saved": "Flag {name} saved.",
    "metric_saved": "Metric {name} saved.",
    "replayed": "{name} dead letters queued again.",
    "destination_saved": "Destination {name} saved.",
    "sync_ran": "Sync {name} ran: its changes are queued for the destination.",
    "erased": "{name} erased everywhere Kirana writes; future events are suppressed.",
    "signed_out": "Signed out.",
    "refreshed": "Report of {name} analysed again.",
    "rolled_back": "Output of {name} rolled back.",
}


def back(url: str, notice: str, name: str = "") -> RedirectResponse:
    """303 to ``url`` with a notice (a key of :data:`NOTICES`)."""
    sep = "&" if "?" in url else "?"
    return RedirectResponse(f"{url}{sep}{urlencode({'done': notice, 'name': name})}", 303)


def notice(request: Request) -> str | None:
    template = NOTICES.get(request.query_params.get("done", ""))
    if template is None:
        return None
    return template.format(name=request.query_params.get("name", ""))
