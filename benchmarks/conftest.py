"""pytest-benchmark suite for the block-Gibbs samplers: `pytest benchmarks/` (not in `tests`).

Rates measured by the tests are collected into one Results and printed as a Markdown
summary (the same table as report.py) at the end of the run.
"""

import pytest
from _gibbs_cases import Results

_RESULTS = pytest.StashKey[Results]()


def pytest_configure(config):
    config.stash[_RESULTS] = Results()


@pytest.fixture
def results(request) -> Results:
    return request.config.stash[_RESULTS]


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's tables
def pytest_terminal_summary(terminalreporter, config):
    results = config.stash[_RESULTS]
    if results.rates or results.sgemm_gflops:
        terminalreporter.write_sep("-", "block-Gibbs summary (best round)")
        terminalreporter.write_line(results.markdown())
