"""Sweeps per second of GibbsSampler.run and of the torch reference, and numpy's SGEMM rate.

Each round runs k sweeps (or products), k being the smallest power of two that takes
ROUND_S; the rate of the best round goes to benchmark.extra_info and to the end summary.
"""

from __future__ import annotations

import pytest
from _gibbs_cases import CASES, RUNNERS, SGEMM_FLOPS, calibrate, sgemm_runner, torch

ROUND_S = 0.05
ROUNDS = 10


def _best_rate(benchmark, run) -> float | None:
    """Runs the rounds; k / best round time, or None when benchmarks are disabled (one call)."""
    k = calibrate(run, ROUND_S) if benchmark.enabled else 1
    benchmark.pedantic(run, args=(k,), rounds=ROUNDS, warmup_rounds=1)
    if benchmark.enabled:
        benchmark.extra_info["per_round"] = k
        return k / benchmark.stats.stats.min
    return None


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
@pytest.mark.parametrize("runner", RUNNERS)
def test_gibbs_sweeps(benchmark, results, runner, case):
    if runner == "torch" and torch is None:
        pytest.skip("torch is not installed")
    benchmark.group = case.name
    rate = _best_rate(benchmark, RUNNERS[runner](case.model()))
    if rate is not None:
        benchmark.extra_info["sweeps_per_s"] = results.rates[runner, case.name] = rate


def test_numpy_sgemm(benchmark, results):
    benchmark.group = "sgemm"
    rate = _best_rate(benchmark, sgemm_runner())
    if rate is not None:
        benchmark.extra_info["gflops"] = results.sgemm_gflops = rate * SGEMM_FLOPS / 1e9
