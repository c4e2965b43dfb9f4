"""Population annealing on classical RBMs: time per run, reported SE, spread and exact error.

One round per seed (_anneal_cases.CASES); every run goes to the end-of-session summary.
With --benchmark-disable each case runs once.
"""

from __future__ import annotations

import pytest
from _anneal_cases import CASES, benchmark_case


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name.replace(" ", "-"))
def test_anneal_log_z(benchmark, anneal_results, case):
    benchmark_case(benchmark, anneal_results, case)
