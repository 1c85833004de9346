"""Offline evaluation of Kirana's automation ranking on a simulated grocer (docs/automation.md).

The world: one placement slot (the home-feed hero banner) with 20 content items and users in
5 audiences of unequal size. True CTRs are drawn so that every audience has its own favourite
item (8-12 %), one item is decent for everyone (6 %, the popularity winner) and the rest are
poor (1-4 %). The question offline evaluation must answer without a live test: how much better
is Kirana's per-audience Thompson policy than a non-personalised popularity policy?

1. **Replay** (Li et al. 2011) over a *uniformly random* decision log: each policy runs
   through the log, learning (with Kirana's decayed stats) only from the events where it
   agrees with the logged choice. Compared with the truth: the same policy run live against
   the simulator for the same number of decisions over the same days. Repeated ``--reps``
   times on fresh logs (and ``--live`` live runs per replay), because a learning policy's
   result also depends on its path. Reported over all its decisions and over the second half.
2. **IPS and SNIPS** over a *non-uniform* log (epsilon-greedy around the popular item, the
   typical "current production policy plus an explore slice"), evaluating the policies frozen
   at the end of the first replay, against their exact CTR (from the true CTRs and the
   policies' exact first-slot probabilities).
3. **IPS over a log written by Kirana itself**: the frozen Thompson policy ranks and logs its
   own propensities (as ``rank_placement`` does); other policies are evaluated from it.

The policies are Kirana's own classes (``ThompsonPolicy``, ``PopularityPolicy``,
``FeedbackStats`` with a 7-day half-life, ``LearningReplay``, ``ips``, ``snips``). Prints
markdown tables; ``--json`` prints every number as JSON instead, or writes it to a file.

    python benchmarks/ranking_offline.py                # ~5 minutes on 2 cores
    python benchmarks/ranking_offline.py --quick        # smoke run, ~25 s
    python benchmarks/ranking_offline.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import t as t_dist

from kirana.automation import (
    Estimate,
    FeedbackStats,
    LearningReplay,
    LoggedDecision,
    PopularityPolicy,
    RankContext,
    RankingPolicy,
    ThompsonPolicy,
    ips,
    replay,
    replay_estimate,
    snips,
)

DAY = 86_400.0
AUDIENCES = ("new_parents", "vegan", "budget", "premium", "students")
SHARES = np.array([0.30, 0.25, 0.20, 0.15, 0.10])
N_ITEMS = 20
ITEMS = tuple(f"item{i:02d}" for i in range(N_ITEMS))
UNIFORM = np.full((len(AUDIENCES), N_ITEMS), 1 / N_ITEMS)
POLICIES: dict[str, Callable[[], RankingPolicy]] = {
    "popularity": PopularityPolicy,
    "thompson_pooled": ThompsonPolicy,
    "thompson_per_audience": ThompsonPolicy,
}


@dataclass(frozen=True)
class World:
    ctr: np.ndarray  # audiences x items
    favourites: np.ndarray
    universal: int

    def value(self, probs: np.ndarray) -> float:
        """Exact CTR of a policy showing item i to audience a with probability probs[a, i]."""
        return float(SHARES @ (probs * self.ctr).sum(axis=1))


def make_world(seed: int) -> World:
    rng = np.random.default_rng(seed)
    ctr = rng.uniform(0.01, 0.04, size=(len(AUDIENCES), N_ITEMS))
    picks = rng.permutation(N_ITEMS)
    universal, favourites = int(picks[0]), picks[1 : 1 + len(AUDIENCES)]
    ctr[:, universal] = 0.06
    ctr[np.arange(len(AUDIENCES)), favourites] = rng.uniform(0.08, 0.12, size=len(AUDIENCES))
    return World(ctr, favourites, universal)


def make_log(
    world: World, n: int, rng: np.random.Generator, probs: np.ndarray, days: float
) -> list[LoggedDecision]:
    """``n`` logged first-slot decisions spread over ``days``, items drawn with ``probs[a]``."""
    seg = rng.choice(len(AUDIENCES), size=n, p=SHARES)
    cum = np.cumsum(probs, axis=1)
    action = np.minimum((rng.random(n)[:, None] > cum[seg]).sum(axis=1), N_ITEMS - 1)
    reward = rng.random(n) < world.ctr[seg, action]
    return [
        LoggedDecision(
            ITEMS, ITEMS[a], float(r), float(probs[s, a]), AUDIENCES[s], t=days * DAY * j / n
        )
        for j, (s, a, r) in enumerate(zip(seg, action, reward, strict=True))
    ]


def arrays(log: list[LoggedDecision]) -> tuple[np.ndarray, ...]:
    """(audience index, item index, reward, logged propensity) per logged decision."""
    return (
        np.array([AUDIENCES.index(e.segment) for e in log]),
        np.array([ITEMS.index(e.action) for e in log]),
        np.array([e.reward for e in log]),
        np.array([e.propensity for e in log]),
    )


class Learner(LearningReplay):
    """Kirana's replay adapter; the pooled policies are simply never told the audience."""

    def __init__(self, name: str) -> None:
        super().__init__(POLICIES[name](), FeedbackStats(half_life=7 * DAY))
        self.personal = name == "thompson_per_audience"
        self.rewards: list[float] = []  # of the decisions it learnt from, in order

    def _seen(self, event: LoggedDecision) -> LoggedDecision:
        if self.personal:
            return event
        return LoggedDecision(
            event.candidates, event.action, event.reward, event.propensity, t=event.t
        )

    def choose(self, event: LoggedDecision, rng: np.random.Generator) -> str:
        return super().choose(self._seen(event), rng)

    def update(self, event: LoggedDecision) -> None:
        self.rewards.append(event.reward)
        super().update(self._seen(event))

    def first_slot(self, audience: str, t: float) -> np.ndarray:
        """The frozen policy's exact probability of showing each item first."""
        arms = self.arms(ITEMS, audience if self.personal else "all", t)
        burn = np.array([a.shown < self.policy.burn_in for a in arms])
        if burn.any():  # burn-in arms go first, in uniformly random order
            return burn / burn.sum()
        if isinstance(self.policy, ThompsonPolicy):
            return self.policy.first_probabilities(arms, RankContext())
        top = self.policy.rank(arms, RankContext(limit=1), np.random.default_rng(0)).order[0]
        return np.array([k == top for k in ITEMS], dtype=float)

    def frozen(self, t: float) -> np.ndarray:
        return np.array([self.first_slot(a, t) for a in AUDIENCES])


def live(world: World, name: str, rounds: int, seed: Any, days: float) -> np.ndarray:
    """The true CTR of each decision of the policy run live for ``rounds`` decisions."""
    rng = np.random.default_rng(seed)
    learner = Learner(name)
    seg = rng.choice(len(AUDIENCES), size=rounds, p=SHARES)
    out = np.empty(rounds)
    for j, s in enumerate(seg):
        event = LoggedDecision(ITEMS, "", 0.0, 1.0, AUDIENCES[s], t=days * DAY * j / rounds)
        item = ITEMS.index(learner.choose(event, rng))
        out[j] = world.ctr[s, item]
        clicked = float(rng.random() < out[j])
        learner.update(LoggedDecision(ITEMS, ITEMS[item], clicked, 1.0, AUDIENCES[s], t=event.t))
    return out


def row(
    policy: str,
    estimator: str,
    log: str,
    est: Estimate,
    truth: float,
    truth_se: float = 0.0,
    z: float = 1.96,
) -> dict[str, Any]:
    """One table row; ``within_ci``: |error| <= z * sqrt(se_estimate^2 + se_truth^2), with
    ``z`` the 97.5 % quantile (Student's t for a mean over a few runs)."""
    return {
        "policy": policy,
        "estimator": estimator,
        "log": log,
        "estimate": est.value,
        "ci95": z * est.stderr,
        "events_used": est.n,
        "effective_n": est.effective_n,
        "true_ctr": truth,
        "true_ci95": z * truth_se,
        "error": est.value - truth,
        "within_ci": bool(abs(est.value - truth) <= z * math.hypot(est.stderr, truth_se)),
    }


def _mean_se(values: list[float], floor_se: float = 0.0) -> tuple[float, float]:
    """Mean over runs and its standard error: the spread of the runs, but never below
    ``floor_se`` (the reward noise alone), since three runs can agree by chance."""
    n = len(values)
    spread = float(np.var(values, ddof=1)) if n > 1 else 0.0
    return float(np.mean(values)), math.sqrt(max(spread, n * floor_se**2) / n)


def replay_learning(
    world: World, args: argparse.Namespace, rows: list[dict[str, Any]]
) -> tuple[dict[str, Learner], dict[str, dict[str, list[float]]]]:
    """Step 1: each policy replayed on ``--reps`` fresh uniform logs, and run live
    ``--live`` times per replay for the same number of decisions.

    A learning policy's result depends on its path (which item a greedy policy locks onto),
    so one replay is one draw: the table compares means, with the spread across runs as the
    uncertainty. Live runs are cheap (no log to walk), hence several per replay.
    """
    runs: dict[str, dict[str, list[float]]] = {
        name: {k: [] for k in ("replay", "replay_se", "replay_late", "live", "live_late", "n")}
        for name in POLICIES
    }
    learners: dict[str, Learner] = {}
    started = time.perf_counter()
    for rep in range(args.reps):
        rng = np.random.default_rng([args.seed, rep])
        log = make_log(world, args.events, rng, UNIFORM, args.days)
        if rep == 0:
            _, _, rewards, _ = arrays(log)
            everything = replay_estimate(rewards, np.ones(len(log), dtype=bool))
            uniform_row = row(
                "uniform_random", "mean reward", "uniform", everything, world.value(UNIFORM)
            )
        for name in POLICIES:
            learner = Learner(name)
            est = replay(log, learner, rng)
            half = est.n // 2
            r = runs[name]
            r["replay"].append(est.value)
            r["replay_se"].append(est.stderr)
            r["replay_late"].append(float(np.mean(learner.rewards[half:])))
            r["n"].append(est.n)
            for k in range(args.live):
                truth = live(world, name, est.n, [args.seed, rep, k, 99], args.days)
                r["live"].append(float(truth.mean()))
                r["live_late"].append(float(truth[half:].mean()))
            learners.setdefault(name, learner)  # the first repetition's is frozen for 2 and 3
            print(
                f"  rep {rep} {name}: {est.n} matched, replay {est.value:.4f}, live "
                f"{np.mean(r['live'][-args.live :]):.4f} ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
    for late, suffix in ((False, ""), (True, ", 2nd half")):
        for name, r in runs.items():
            n = int(np.mean(r["n"]) / (2 if late else 1))
            noise = float(np.mean(r["replay_se"])) * (math.sqrt(2) if late else 1.0)
            value, se = _mean_se(r["replay_late" if late else "replay"], noise)
            truth, truth_se = _mean_se(r["live_late" if late else "live"])
            label = f"replay{suffix} (mean of {len(r['n'])})"
            z = float(t_dist.ppf(0.975, len(r["n"]) - 1)) if len(r["n"]) > 1 else 1.96
            est = Estimate(value, se, n, n)
            rows.append(row(name, label, "uniform", est, truth, truth_se, z))
    rows.append(uniform_row)
    return learners, runs


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    world = make_world(args.seed)
    rows: list[dict[str, Any]] = []
    learners, runs = replay_learning(world, args, rows)
    rng = np.random.default_rng([args.seed, 1000])
    end = args.days * DAY

    # 2. the policies frozen at the end of the first replay, IPS / SNIPS on an epsilon-greedy log
    frozen = {name: learners[name].frozen(end) for name in POLICIES}
    exact = {name: world.value(p) for name, p in frozen.items()}
    greedy = np.full((len(AUDIENCES), N_ITEMS), args.epsilon / N_ITEMS)
    greedy[:, world.universal] += 1 - args.epsilon
    seg, act, rew, mu = arrays(make_log(world, args.events, rng, greedy, args.days))
    for name, probs in frozen.items():
        target = probs[seg, act]
        for estimator in (ips, snips):
            est = estimator(rew, target, mu)
            rows.append(
                row(name + "_frozen", estimator.__name__, "epsilon_greedy", est, exact[name])
            )

    # 3. a log written by Kirana's frozen per-audience Thompson policy, with its propensities
    ts = learners["thompson_per_audience"]
    seg3 = rng.choice(len(AUDIENCES), size=args.thompson_events, p=SHARES)
    arms = {a: ts.arms(ITEMS, a, end) for a in AUDIENCES}
    act3, prop3 = np.empty(len(seg3), dtype=int), np.empty(len(seg3))
    for j, s in enumerate(seg3):
        ranking = ts.policy.rank(arms[AUDIENCES[s]], RankContext(limit=1), rng)
        act3[j], prop3[j] = ITEMS.index(ranking.order[0]), ranking.propensities[0]
    rew3 = (rng.random(len(seg3)) < world.ctr[seg3, act3]).astype(float)
    targets = {
        **{n + "_frozen": frozen[n] for n in ("popularity", "thompson_pooled")},
        "uniform_random": UNIFORM,
    }
    for name, probs in targets.items():
        truth = world.value(probs)
        rows.append(row(name, "snips", "thompson", snips(rew3, probs[seg3, act3], prop3), truth))

    def lift(label: str, ts_row: dict[str, Any], pop_row: dict[str, Any]) -> dict[str, Any]:
        """Relative lift with a delta-method 95 % half-width (treating the two as independent;
        both replays read the same logs, so this errs wide)."""

        def one(a: float, ha: float, b: float, hb: float) -> tuple[float, float]:
            return a / b - 1, (a / b) * math.hypot(ha / a, hb / b)

        est, est_ci = one(ts_row["estimate"], ts_row["ci95"], pop_row["estimate"], pop_row["ci95"])
        true, true_ci = one(
            ts_row["true_ctr"], ts_row["true_ci95"], pop_row["true_ctr"], pop_row["true_ci95"]
        )
        return {
            "comparison": label,
            "estimated": est,
            "estimated_ci95": est_ci,
            "true": true,
            "true_ci95": true_ci,
        }

    by = {(r["policy"], r["estimator"].split(" (")[0], r["log"]): r for r in rows}
    pop, ts_name = "popularity", "thompson_per_audience"
    ceiling = {
        "estimate": math.nan,
        "ci95": math.nan,
        "true_ctr": float(SHARES @ world.ctr.max(axis=1)),
        "true_ci95": 0.0,
    }
    popular = {
        "estimate": math.nan,
        "ci95": math.nan,
        "true_ctr": float(SHARES @ world.ctr[:, world.universal]),
        "true_ci95": 0.0,
    }
    lifts = [
        lift(
            "learning, all decisions (replay, uniform log)",
            by[ts_name, "replay", "uniform"],
            by[pop, "replay", "uniform"],
        ),
        lift(
            "learning, second half (replay, uniform log)",
            by[ts_name, "replay, 2nd half", "uniform"],
            by[pop, "replay, 2nd half", "uniform"],
        ),
        lift(
            "frozen after learning (SNIPS, epsilon-greedy log)",
            by[ts_name + "_frozen", "snips", "epsilon_greedy"],
            by[pop + "_frozen", "snips", "epsilon_greedy"],
        ),
        lift("ceiling: each audience's favourite vs the popular item", ceiling, popular),
    ]
    return {
        "benchmark": "ranking_offline",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "seconds": round(time.perf_counter() - started, 1),
        "params": {k: v for k, v in vars(args).items() if k != "json"},
        "world": {
            "audiences": dict(zip(AUDIENCES, SHARES.tolist(), strict=True)),
            "favourite_ctr": world.ctr[np.arange(len(AUDIENCES)), world.favourites].tolist(),
            "popular_item_ctr": float(world.ctr[0, world.universal]),
            "oracle_ctr": float(SHARES @ world.ctr.max(axis=1)),
            "uniform_ctr": world.value(UNIFORM),
        },
        "replay_runs": runs,
        "rows": rows,
        "lift": lifts,
    }


def print_tables(result: dict[str, Any]) -> None:
    w, p = result["world"], result["params"]
    print(
        f"World: 5 audiences x {N_ITEMS} items; oracle CTR {w['oracle_ctr']:.4f}, popular item "
        f"{w['popular_item_ctr']:.4f}, uniform {w['uniform_ctr']:.4f}; logs of "
        f"{p['events']:,} decisions over {p['days']:g} days\n"
    )
    print("| policy | estimator | log | estimate | ±95% | events | ESS | true CTR | ±95% | error |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in result["rows"]:
        flag = "" if r["within_ci"] else " *"
        print(
            f"| {r['policy']} | {r['estimator']} | {r['log']} | {r['estimate']:.4f} | "
            f"{r['ci95']:.4f} | {r['events_used']:,} | {r['effective_n']:,.0f} | "
            f"{r['true_ctr']:.4f} | {r['true_ci95']:.4f} | {r['error']:+.4f}{flag} |"
        )
    print(
        "\n`*`: error outside the combined 95 % interval (Student's t over runs for the replay"
        " means). ESS: effective sample size"
        " of the importance weights, (sum w)^2 / sum w^2.\n"
    )
    print("| lift of per-audience Thompson over popularity | estimated | true |")
    print("|---|---:|---:|")
    for lf in result["lift"]:
        est = "-"
        if not math.isnan(lf["estimated"]):
            est = f"{lf['estimated']:+.1%} ± {lf['estimated_ci95']:.1%}"
        true = f"{lf['true']:+.1%}" + (f" ± {lf['true_ci95']:.1%}" if lf["true_ci95"] else "")
        print(f"| {lf['comparison']} | {est} | {true} |")
    print(f"\n{result['seconds']} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000, help="decisions per logged stream")
    ap.add_argument("--days", type=float, default=14.0, help="time the logs span")
    ap.add_argument("--reps", type=int, default=5, help="replays per policy, on fresh logs")
    ap.add_argument("--live", type=int, default=4, help="live runs per replay (the truth)")
    ap.add_argument("--thompson-events", type=int, default=20_000)
    ap.add_argument("--epsilon", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="60k events, 1 replay, 2 live runs")
    ap.add_argument("--json", nargs="?", const="-", help="JSON to stdout, or to this file")
    args = ap.parse_args()
    if args.quick:
        args.events, args.thompson_events, args.reps, args.live = 60_000, 5_000, 1, 2
    result = run(args)
    if args.json == "-":
        print(json.dumps(result, indent=2))
        return
    print_tables(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
