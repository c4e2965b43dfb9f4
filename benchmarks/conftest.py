"""pytest-benchmark suites for the samplers: `pytest benchmarks/` (not in `tests`).

Each suite (block Gibbs, population annealing, CT-QMC, minor embedding) collects what its tests measure into one
Results, printed as a Markdown summary (the same tables as report.py) at the end of the run.
"""

from qvae_core.torch_env import shorten_torch_spin

# As `qvae-core train` does, before torch loads: torch's OpenMP threads spin for milliseconds
# after each operation and would take the cores from the sampler measured next. The torch
# reference sweeps run back to back, well within the shorter spin, and measured the same.
shorten_torch_spin()

import _anneal_cases  # noqa: E402
import _ctqmc_cases  # noqa: E402
import _embedding_cases  # noqa: E402
import _gibbs_cases  # noqa: E402
import pytest  # noqa: E402

_SUITES = {  # fixture name -> (summary title, Results factory, markdown arguments)
    "results": ("block-Gibbs summary (best round)", _gibbs_cases.Results, {}),
    "anneal_results": ("population-annealing summary", _anneal_cases.Results, {}),
    "ctqmc_results": ("CT-QMC summary (best round)", _ctqmc_cases.Results, {}),
    "qbm_anneal_results": (
        "quantum log Z / log_diag summary",
        _anneal_cases.Results,
        {"cases": _ctqmc_cases.QBM_CASES, "goal": None},
    ),
    "embedding_results": ("minor-embedding summary", _embedding_cases.Results, {}),
}
_RESULTS = pytest.StashKey[dict]()


def pytest_configure(config):
    config.stash[_RESULTS] = {name: factory() for name, (_, factory, _) in _SUITES.items()}


def _suite_fixture(name: str):
    """A fixture named `name` giving that suite's Results for the whole session."""

    @pytest.fixture(name=name)
    def fixture(request):
        return request.config.stash[_RESULTS][name]

    return fixture


results, anneal_results, ctqmc_results, qbm_anneal_results, embedding_results = (
    _suite_fixture(name) for name in _SUITES)


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's tables
def pytest_terminal_summary(terminalreporter, config):
    for name, (title, _, arguments) in _SUITES.items():
        results = config.stash[_RESULTS][name]
        if results.measured:
            terminalreporter.write_sep("-", title)
            terminalreporter.write_line(results.markdown(**arguments))
