"""CT-QMC sweeps/s against dwave-samplers and block Gibbs; quantum log Z and log_diag on 32x32.

Sweep rates are best rounds (_gibbs_cases.benchmark_best_rate); the anneal cases run one round per seed.
With --benchmark-disable every test runs once, and log_diag only on two states (a smoke test).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from _anneal_cases import benchmark_case
from _ctqmc_cases import QBM_CASES, RUNNERS, SWEEP_CASES, exact_log_diag_hidden_field, runner_available
from _gibbs_cases import benchmark_best_rate

import qvae_core as q


@pytest.mark.parametrize("case", SWEEP_CASES)
@pytest.mark.parametrize("runner", RUNNERS)
def test_ctqmc_sweeps(benchmark, ctqmc_results, runner, case):
    if not runner_available(runner):
        pytest.skip("dwave-samplers is not installed")
    benchmark.group = f"ctqmc {case}"
    rate = benchmark_best_rate(benchmark, RUNNERS[runner](SWEEP_CASES[case]()))
    if rate is not None:
        benchmark.extra_info["sweeps_per_s"] = ctqmc_results.rates[runner, case] = rate


@pytest.mark.parametrize("case", QBM_CASES, ids=lambda c: f"{c.quantity}-{c.name}-{c.population}".replace(" ", ""))
def test_qbm_anneal(benchmark, qbm_anneal_results, case):
    problem = case.problem()
    if problem.states is not None and not benchmark.enabled:
        exact = None if problem.exact is None else problem.exact[:2]
        problem = dataclasses.replace(problem, states=problem.states[:2], exact=exact)
    benchmark_case(benchmark, qbm_anneal_results, case, problem)


def test_exact_log_diag_hidden_field():
    """The closed form used as the 32x32 reference agrees with q.exact's enumeration where both apply."""
    rng = np.random.default_rng(0)
    rbm = q.RBM(rng.normal(size=(6, 5)), rng.normal(size=6), rng.normal(size=5))
    model = q.QBM(rbm, np.r_[np.zeros(6), np.full(5, 0.7)])
    states = rng.integers(0, 2, (20, 11), dtype=np.uint8)
    np.testing.assert_allclose(exact_log_diag_hidden_field(model, states), q.exact.log_diag(model, states), atol=1e-12)
