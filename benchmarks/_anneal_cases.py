"""Shared pieces of the population-annealing benchmarks (pytest suite and report.py).

A case is one estimate (log Z by `q.anneal`, or log_diag of a batch of states by `q.log_diag`)
repeated over independent seeds 0, 1, ... at the library's default settings. Its table row gives
the time per run, the mean standard error the runs report, the run-to-run spread (std over runs)
and, where an exact value exists, the actual error: RMS and max over runs (and states).

Classical cases, from the issue: an RBM 20x64 with N(0, 1) weights and biases (multimodal; the
exact value enumerates 2^20 visible states); goal |Delta log Z| <= 0.05 in under 2 s per run. RBMs
64x64 and 256x256 (no exact value) use `scaled_rbm`; their spread is over 5 runs.
The quantum (QBM) cases of the CT-QMC issue are built from the same pieces in _ctqmc_cases.py.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from _gibbs_cases import fmt, random_rbm

import qvae_core as q

def scaled_rbm(num_visible: int, num_hidden: int | None = None, seed: int = 0) -> q.RBM:
    """RBM with N(0, s^2) weights, s = 2 / sqrt(mean layer size), and N(0, 0.1^2) biases.

    Local fields are O(1) at every size: strongly correlated, but not frozen.
    """
    num_hidden = num_visible if num_hidden is None else num_hidden
    scale = 2.0 / np.sqrt(0.5 * (num_visible + num_hidden))
    return random_rbm(num_visible, num_hidden, weight_std=scale, bias_std=0.1, seed=seed)


@dataclass(frozen=True)
class Problem:
    """A case made concrete: the model, the states of a log_diag case, the exact value if any."""

    model: object
    states: np.ndarray | None = None
    exact: float | np.ndarray | None = None


@dataclass(frozen=True)
class Run:
    """One run: the estimate(s), the standard error(s) it reports, wall time."""

    value: float | np.ndarray
    se: float | np.ndarray
    seconds: float


@dataclass(frozen=True, eq=False)  # hashed by identity: a key of Results.runs
class Case:
    """log Z of `model()` (or log_diag of `states(model)`) at `population`, over `runs` seeds.

    exact: model (and states) -> the exact value(s), None where there is no reference.
    """

    name: str
    model: Callable[[], object]
    runs: int
    population: int = 1000
    states: Callable[[object], np.ndarray] | None = None
    exact: Callable | None = None

    @property
    def quantity(self) -> str:
        return "log Z" if self.states is None else "log_diag"

    def problem(self) -> Problem:
        model = self.model()
        states = None if self.states is None else self.states(model)
        if self.exact is None:
            return Problem(model, states)
        return Problem(model, states, self.exact(model) if states is None else self.exact(model, states))

    def run(self, problem: Problem, seed: int) -> Run:
        start = time.perf_counter()
        if problem.states is None:
            result = q.anneal(problem.model, population=self.population, seed=seed)
            value, se = result.log_z, result.log_z_std
        else:
            value, se = q.log_diag(problem.model, problem.states, population=self.population, seed=seed)
        return Run(value, se, time.perf_counter() - start)


CASES = (
    Case("RBM 20x64", lambda: random_rbm(20, 64, weight_std=1.0, bias_std=1.0), runs=8, exact=q.exact.log_z),
    Case("RBM 64x64", lambda: scaled_rbm(64), runs=5),
    Case("RBM 256x256", lambda: scaled_rbm(256), runs=5),
)
EXACT_GOAL = (CASES[0], 0.05, 2.0)  # (case, max RMS |error| in nats, max seconds per run), from the issue


def measure(case: Case, runs: int | None = None) -> tuple[Problem, list[Run]]:
    """The problem of `case` and `runs` (default case.runs) runs of it with seeds 0, 1, ..."""
    problem = case.problem()
    return problem, [case.run(problem, seed) for seed in range(case.runs if runs is None else runs)]


@dataclass
class Results:
    """runs[case] = (Problem, [Run, ...]), rendered by `markdown(cases)`."""

    runs: dict = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return bool(self.runs)

    def add(self, case: Case, problem: Problem, run: Run) -> None:
        self.runs.setdefault(case, (problem, []))[1].append(run)

    def markdown(self, cases=CASES, goal=EXACT_GOAL) -> str:
        """Table of the measured `cases` (others are left out), then the issue's goal if measured."""
        lines = [
            "| case | quantity | population | runs | time/run (s) | mean reported SE | spread (std) "
            "| RMS error | max abs error |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for case in cases:
            if case not in self.runs:
                continue
            problem, runs = self.runs[case]
            s = _summary(problem, runs)
            lines.append(
                f"| {case.name} | {case.quantity} | {case.population} | {len(runs)} | {s['seconds']:.2f} "
                f"| {s['se']:.4f} | {fmt(s['spread'], '.4f')} | {fmt(s['rms'], '.4f')} | {fmt(s['max'], '.4f')} |"
            )
        if goal is not None and goal[0] in self.runs:
            case, max_error, max_seconds = goal
            s = _summary(*self.runs[case])
            verdict = "met" if s["rms"] <= max_error and s["seconds"] < max_seconds else "NOT met"
            goal_text = f"RMS |Delta log Z| <= {max_error:g} in under {max_seconds:g} s per run"
            lines += ["", f"- {case.name}: {goal_text}: {verdict}"]
        return "\n".join(lines)


def _summary(problem: Problem, runs: list[Run]) -> dict:
    """Mean time and reported SE; spread over runs (RMS over states); RMS and max |error|."""
    values = np.array([np.atleast_1d(r.value) for r in runs])  # (runs, states)
    out = {
        "seconds": np.mean([r.seconds for r in runs]),
        "se": np.mean([np.mean(r.se) for r in runs]),
        "spread": np.sqrt(np.mean(values.var(axis=0, ddof=1))) if len(runs) > 1 else None,
        "rms": None,
        "max": None,
    }
    if problem.exact is not None:
        errors = values - np.atleast_1d(problem.exact)
        out["rms"], out["max"] = np.sqrt(np.mean(errors**2)), np.abs(errors).max()
    return out


def benchmark_case(benchmark, results: Results, case: Case, problem: Problem | None = None) -> None:
    """pytest-benchmark rounds of `case`, one per seed (one call when benchmarks are disabled)."""
    problem = case.problem() if problem is None else problem
    seeds = iter(range(case.runs))
    benchmark.group = case.quantity
    benchmark.pedantic(
        lambda seed: results.add(case, problem, case.run(problem, seed)),
        setup=lambda: ((next(seeds),), {}),
        rounds=case.runs,
    )
