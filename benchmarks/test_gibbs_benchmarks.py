"""Sweeps per second of GibbsSampler.run and of the torch reference, and numpy's SGEMM rate.

Each round runs k sweeps (or products), k being the smallest power of two that takes
BENCHMARK_ROUND_S; the rate of the best round goes to benchmark.extra_info and to the end summary.
"""

from __future__ import annotations

import pytest
from _gibbs_cases import CASES, RUNNERS, SGEMM_FLOPS, benchmark_best_rate, sgemm_runner, torch


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
@pytest.mark.parametrize("runner", RUNNERS)
def test_gibbs_sweeps(benchmark, results, runner, case):
    if runner == "torch" and torch is None:
        pytest.skip("torch is not installed")
    benchmark.group = case.name
    rate = benchmark_best_rate(benchmark, RUNNERS[runner](case.model()))
    if rate is not None:
        benchmark.extra_info["sweeps_per_s"] = results.rates[runner, case.name] = rate


def test_numpy_sgemm(benchmark, results):
    benchmark.group = "sgemm"
    rate = benchmark_best_rate(benchmark, sgemm_runner())
    if rate is not None:
        benchmark.extra_info["gflops"] = results.sgemm_gflops = rate * SGEMM_FLOPS / 1e9
