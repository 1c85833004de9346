"""By default, `kirana stats` gives GrowthBook's numbers: gbstats, run in its own environment on
the same sufficient statistics, agrees to 1e-6 for every metric type (binomial, mean, ratio,
CUPED on a mean and on a binomial metric) and setting (fixed-horizon and sequential
frequentist, Bayesian; relative and absolute lift; several alphas and sequential tuning sizes).

gbstats pins numpy < 2, so it cannot live in the project's virtualenv: the first run creates
``.tools/gbstats-venv`` (git-ignored) with ``python3.11 -m venv`` and ``pip install
gbstats==0.8.0``, and ``gbstats_runner.py`` runs there on JSON. The tests skip, saying why,
only if that environment cannot be created (no python3.11, no package index).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from kirana.cli.stats import stats

GBSTATS_VERSION = "0.8.0"
ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".tools" / "gbstats-venv"
RUNNER = Path(__file__).with_name("gbstats_runner.py")
TOLERANCE = 1e-6
METRIC_TYPES = ("binomial", "mean", "ratio", "cuped", "binomial_cuped")
SETTINGS = ("fixed", "sequential", "bayesian")


def _ensure_gbstats() -> Path:
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", f"import gbstats, importlib.metadata as m; "
             f"assert m.version('gbstats') == '{GBSTATS_VERSION}'"]  # fmt: skip
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    base = shutil.which("python3.11")
    if base is None:
        pytest.skip("gbstats parity: python3.11 is not installed (gbstats needs numpy < 2)")
    steps = [
        [base, "-m", "venv", "--clear", str(VENV)],
        [str(python), "-m", "pip", "install", "-q", f"gbstats=={GBSTATS_VERSION}"],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.skip(f"gbstats parity: cannot create {VENV}: {done.stderr.strip()[-300:]}")
    return python


@pytest.fixture(scope="module")
def gbstats_python() -> Path:
    return _ensure_gbstats()


def _arm(kind: str, rng: np.random.Generator, lift: float) -> dict[str, Any]:
    """One variation's sums from simulated per-user values (so they are consistent)."""
    n = int(rng.integers(40, 4000))
    if kind == "binomial":
        p = rng.uniform(0.03, 0.5) * (1 + lift)
        return {"n": n, "sum": int(rng.binomial(n, min(p, 0.95)))}
    if kind == "binomial_cuped":
        before = rng.random(n) < rng.uniform(0.1, 0.5)
        after = rng.random(n) < np.where(before, 0.5, 0.15) * (1 + lift)
        x, y = before.astype(float), after.astype(float)
        return {"n": n, "sum": y.sum(), "pre_sum": x.sum(), "cross_sum": (x * y).sum()}
    x = rng.lognormal(1.0, 0.8, n)
    if kind == "mean":
        y = x * (1 + lift)
        return {"n": n, "sum": y.sum(), "sum_squares": (y * y).sum()}
    if kind == "ratio":
        den = rng.poisson(1.5, n) + 1.0
        num = den * rng.gamma(3.0, 10.0 * (1 + lift), n)
        return {
            "n": n,
            "numerator_sum": num.sum(),
            "numerator_sum_squares": (num * num).sum(),
            "denominator_sum": den.sum(),
            "denominator_sum_squares": (den * den).sum(),
            "cross_sum": (num * den).sum(),
        }
    y = rng.uniform(0.2, 1.2) * x + rng.normal(lift * 3, 1.0, n)
    return {
        "n": n,
        "sum": y.sum(),
        "sum_squares": (y * y).sum(),
        "pre_sum": x.sum(),
        "pre_sum_squares": (x * x).sum(),
        "cross_sum": (x * y).sum(),
    }


def _cases(per_cell: int = 6) -> list[dict[str, Any]]:
    rng = np.random.default_rng(19)
    cases = []
    for kind in METRIC_TYPES:
        for setting in SETTINGS:
            for difference in ("relative", "absolute"):
                for _ in range(per_cell):
                    lift = float(rng.choice([0.0, 0.02, 0.1, -0.05]))
                    cases.append(
                        {
                            "metric_type": kind,
                            "engine": "bayesian" if setting == "bayesian" else "frequentist",
                            "sequential": setting == "sequential",
                            "tuning_n": float(rng.choice([1000, 5000, 20000])),
                            "alpha": float(rng.choice([0.01, 0.05, 0.1])),
                            "difference": difference,
                            "variations": [_arm(kind, rng, 0.0), _arm(kind, rng, lift)],
                        }
                    )
    return cases


def _kirana(case: dict[str, Any]) -> dict[str, Any]:
    """`kirana stats` on the case, through the real command."""
    request: dict[str, Any] = {
        "metric_type": case["metric_type"],
        "engine": case["engine"],
        "alpha": case["alpha"],
        "variations": case["variations"],
    }
    if case["sequential"]:
        request |= {"sequential": True, "sequential_tuning_n": case["tuning_n"]}
    app = typer.Typer()
    app.command()(stats)
    result = CliRunner().invoke(app, [], input=json.dumps(request))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["variations"][1]


def _close(mine: float | None, theirs: float) -> bool:
    return mine is not None and abs(mine - theirs) <= TOLERANCE * max(1.0, abs(theirs))


def test_kirana_stats_equals_gbstats_for_every_metric_type_and_setting(
    gbstats_python: Path,
) -> None:
    cases = _cases()
    done = subprocess.run(
        [str(gbstats_python), str(RUNNER)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    theirs_all = json.loads(done.stdout)
    compared: dict[tuple[str, str, str], int] = {}
    for case, theirs in zip(cases, theirs_all, strict=True):
        assert theirs["error"] is None, (case, theirs)  # the generator avoids degenerate data
        variation = _kirana(case)
        lift = variation[case["difference"]]
        pairs = [
            ("estimate", lift["estimate"], theirs["expected"]),
            ("ci lower", lift["ci"][0], theirs["ci"][0]),
            ("ci upper", lift["ci"][1], theirs["ci"][1]),
            ("sd", lift.get("sd", lift.get("se")), theirs["stddev"]),
        ]
        if case["engine"] == "bayesian":
            pairs += [
                ("chance to win", lift["chance_to_beat_control"], theirs["chance_to_win"]),
                ("risk control", lift["risk"]["control"], theirs["risk"][0]),
                ("risk treatment", lift["risk"]["treatment"], theirs["risk"][1]),
            ]
        else:
            pairs.append(("p-value", lift["p_value"], theirs["p_value"]))
        wrong = [(name, mine, ref) for name, mine, ref in pairs if not _close(mine, ref)]
        assert not wrong, (case["metric_type"], case["engine"], case["difference"], wrong)
        setting = "sequential" if case["sequential"] else case["engine"]
        key = (case["metric_type"], setting, case["difference"])
        compared[key] = compared.get(key, 0) + 1
    assert len(compared) == len(METRIC_TYPES) * len(SETTINGS) * 2
    assert min(compared.values()) == 6
