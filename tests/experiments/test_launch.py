"""Starting an experiment that would assign nobody says why (issue 19, item 4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from kirana.experiments.assignment.assign import assign
from kirana.experiments.assignment.definitions import parse_experiment
from kirana.experiments.launch import start_warnings

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


def _experiment(**fields: object):
    return parse_experiment(
        {
            "key": "e",
            "variations": [{"key": "a"}, {"key": "b"}],
            "status": "running",
            **fields,
        }
    )


@settings(max_examples=150, deadline=None)
@given(
    end_offset=st.none() | st.integers(-10_000, 10_000),
    coverage=st.sampled_from([0.0, 0.3, 1.0]),
    empty_targeting=st.booleans(),
    user=st.text(min_size=1, max_size=6),
)
def test_a_warning_exactly_when_nobody_would_be_assigned(
    end_offset: int | None, coverage: float, empty_targeting: bool, user: str
) -> None:
    fields: dict[str, object] = {"coverage": coverage}
    if end_offset is not None:
        fields["phase_start"] = (NOW - timedelta(days=400)).isoformat()
        fields["phase_end"] = (NOW + timedelta(minutes=end_offset or 1)).isoformat()
    if empty_targeting:
        fields["targeting"] = {"country": {"$in": []}}
    experiment = _experiment(**fields)
    warnings = start_warnings(experiment, NOW)
    ended = end_offset is not None and end_offset < 0
    nobody = ended or coverage == 0 or empty_targeting
    assert bool(warnings) == nobody
    if nobody:  # and indeed: this user (with any country) is not assigned
        result = assign(experiment, {"id": user, "country": "nl"}, now=NOW)
        assert not result.in_experiment
