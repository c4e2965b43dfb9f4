"""Population annealing (PA) with partition-function estimates (docs/conventions.md, "Population annealing").

The population anneals theta_t = t * theta from t = 0 (uniform, log Z_0 = n log 2) to t = 1: at
each step replicas are reweighted, log(Z_t'/Z_t) = log mean_i w_i, resampled (systematic, within
independent sub-populations) and equilibrated by block-Gibbs sweeps at t'. RBM weights sum out the
larger layer analytically, w_i = p~_t'(y_i) / p~_t(y_i); other models use w_i = exp(-(t' - t) E_i).
log Z = log mean_m Z_m over the sub-population estimates, which is unbiased in Z; their spread gives
`log_z_std`. Combine independent runs with `combine_log_z` (log-mean-exp), never a mean of log Z.
A QBM anneals its worldlines' diagonal part in from the exact transverse-field reference (`anneal`);
with the tau = 0 slice clamped the same annealing gives log <z|e^{-H}|z> (`log_diag`).

This module owns the annealing policies the rest of the package shares: the default number of
sub-populations, the smallest population they accept and the population of a DVAE's log Z runs.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields

import numpy as np

from ._progress import progress_bar
from ._validation import binary_states, finite_array, fits_in_memory, positive_int, seed_value
from ._validation import num_threads as num_threads_arg
from .kinds import core_kind

__all__ = ["AnnealResult", "anneal", "log_diag", "combine_log_z", "NUM_SUBPOPULATIONS", "MIN_POPULATION",
           "LOG_Z_POPULATION"]

# Sub-populations of an annealing run by default (anneal, log_diag), and so the smallest population
# those defaults accept: two replicas in each.
NUM_SUBPOPULATIONS = 10
MIN_POPULATION = 2 * NUM_SUBPOPULATIONS
# Default population of the annealing runs that estimate a DVAE prior's log Z (training, evaluation).
LOG_Z_POPULATION = 4000


def _settings(population, sweeps_per_step, target_ess, num_subpopulations, max_steps) -> tuple:
    """Validated (population, sweeps_per_step, target_ess, num_subpopulations, max_steps) of a
    population-annealing run: at least 2 replicas per sub-population, 0 < target_ess < 1."""
    population = positive_int(population, "population", minimum=2)
    sweeps_per_step = positive_int(sweeps_per_step, "sweeps_per_step", minimum=0)
    num_subpopulations = positive_int(num_subpopulations, "num_subpopulations")
    if num_subpopulations > population // 2:
        raise ValueError(
            f"num_subpopulations: at most population // 2 = {population // 2}, got {num_subpopulations}"
        )
    target = float(finite_array(target_ess, "target_ess", ndim=0))
    if not 0.0 < target < 1.0:
        raise ValueError(f"target_ess: must be in (0, 1), got {target}")
    return population, sweeps_per_step, target, num_subpopulations, positive_int(max_steps, "max_steps")


@dataclass(frozen=True, eq=False)
class AnnealResult:
    """Estimate and diagnostics of one population-annealing run.

    log_z, log_z_std: log Z = log mean_m Z_m and its standard error from the sub-populations.
    samples: the final population, (population, n) uint8, distributed as p(z) = e^{-E(z)}/Z.
    schedule: the t values used, from 0 to 1; ess: normalised effective sample size of the weights
    at each step; rho: family statistic R * sum_f nu_f^2 after each step (want rho << population);
    families: surviving initial replicas after each step; energies: E of the final population.
    """

    log_z: float
    log_z_std: float
    samples: np.ndarray
    schedule: np.ndarray
    ess: np.ndarray
    rho: np.ndarray
    families: np.ndarray
    energies: np.ndarray
    subpopulation_log_z: np.ndarray
    mean_kinks_per_unit: float = 0.0

    @property
    def num_steps(self) -> int:
        return len(self.schedule) - 1

    def __eq__(self, other):
        """Every field equal, arrays element by element (so a pickled result equals its original)."""
        if type(other) is not AnnealResult:
            return NotImplemented
        return all(np.array_equal(getattr(self, f.name), getattr(other, f.name), equal_nan=True)
                   for f in fields(self))

    __hash__ = None  # mutable arrays inside


def anneal(
    model,
    *,
    population: int = 1000,
    seed=None,
    sweeps_per_step: int = 5,
    schedule=None,
    target_ess: float = 0.999,
    num_subpopulations: int = NUM_SUBPOPULATIONS,
    max_steps: int = 100_000,
    num_threads=None,
    progress: bool = False,
) -> AnnealResult:
    """Population annealing of `model` from its exact start to p(z) = e^{-E(z)}/Z.

    RBM / BoltzmannMachine: theta_t = t theta from the uniform distribution (log Z_0 = n log 2).
    QBM: paths start from the transverse-field reference H_ref = -sum Gamma_l sigma^x_l, sampled
    exactly (log Z_0 = sum_l log 2cosh Gamma_l), and the diagonal part is annealed in with
    log-weights -(t' - t) int_0^1 E(z(tau)) dtau; log_z = log Tr e^{-H} and samples are tau = 0
    slices (docs/conventions.md, "Quantum annealing on paths"); mean_kinks_per_unit is the final kink density.

    schedule: None chooses each step by bisection on dt so that the normalised ESS of the weights
    is `target_ess`; or an increasing array of t values in (0, 1] ending at 1 (a leading 0 is
    allowed). Reproducible for a seed whatever `num_threads`. progress=True shows a tqdm bar of the
    t reached (needs tqdm); it changes no result.
    """
    population, sweeps_per_step, target, num_subpopulations, max_steps = _settings(
        population, sweeps_per_step, target_ess, num_subpopulations, max_steps
    )
    seed = seed_value(seed)
    ts = _check_schedule(schedule)
    if ts.size - 1 > max_steps:
        raise ValueError(f"schedule: {ts.size - 1} steps, more than max_steps = {max_steps}")
    threads = num_threads_arg(num_threads)
    kind = core_kind(model)
    if kind is None:
        raise ValueError(f"model: expected an RBM, BoltzmannMachine or QBM, got {type(model).__name__}")
    fits_in_memory(population, model.num_units, "population")
    with _bar(progress, 1.0, "annealing", "t", "{l_bar}{bar}| t = {n:.3f} [{elapsed}]") as report:
        out = kind.anneal(model._compiled, population, seed, sweeps_per_step, ts, target, num_subpopulations,
                          max_steps, threads, report)
    return AnnealResult(**out)


def log_diag(
    qbm,
    states,
    *,
    population: int = 500,
    seed=None,
    sweeps_per_step: int = 5,
    target_ess: float = 0.999,
    num_subpopulations: int = NUM_SUBPOPULATIONS,
    max_steps: int = 100_000,
    num_threads=None,
    progress: bool = False,
):
    """log <z|e^{-H}|z> for each row of `states` by clamped-slice population annealing (Eq. E4 of
    paper 000): the tau = 0 slice is fixed to z, paths start from the exact transverse-field
    reference (log value sum_l log cosh Gamma_l) and the diagonal part is annealed in.

    Returns (log_diag, log_diag_std), each of shape (batch,). Parallel over the batch;
    log p_QBM(z) = log_diag - log Z. progress=True shows a tqdm bar of the states finished (needs
    tqdm); it changes no result.
    """
    kind = core_kind(qbm)
    if kind is None or not kind.quantum:
        raise ValueError(f"qbm: expected a QBM, got {type(qbm).__name__}")
    states = binary_states(states, "states", qbm.num_units)
    settings = _settings(population, sweeps_per_step, target_ess, num_subpopulations, max_steps)
    population, sweeps_per_step, target, num_subpopulations, max_steps = settings
    fits_in_memory(population, qbm.num_units, "population")
    seed, threads = seed_value(seed), num_threads_arg(num_threads)
    with _bar(progress, states.shape[0], "log_diag", "state") as report:
        out = kind.log_diag(qbm._compiled, states, population, seed, sweeps_per_step, target, num_subpopulations,
                            max_steps, threads, report)
    return out["log_diag"], out["log_diag_std"]


@contextmanager
def _bar(progress, total, desc: str, unit: str, bar_format=None):
    """The progress callback of a core call (None unless `progress`): it moves a tqdm bar to the
    value the core reports between its rounds; the bar fills when the call returns."""
    if not isinstance(progress, bool):
        raise ValueError(f"progress: expected True or False, got {progress!r}")
    if not progress:
        yield None
        return
    options = {"bar_format": bar_format} if bar_format else {}
    bar = progress_bar(total, desc, unit=unit, **options)

    def report(value: float) -> None:
        bar.update(type(total)(value) - bar.n)  # a count stays an integer

    try:
        yield report
        report(total)
    finally:
        bar.close()


def _check_schedule(schedule) -> np.ndarray:
    if schedule is None:
        return np.zeros(0)
    ts = finite_array(schedule, "schedule", ndim=1)
    if ts.size and ts[0] == 0.0:
        ts = ts[1:]
    if ts.size == 0:
        raise ValueError("schedule: needs at least one t value in (0, 1]")
    if np.any(np.diff(ts) <= 0):
        raise ValueError("schedule: t values must be strictly increasing")
    if ts[0] <= 0.0 or ts[-1] != 1.0:
        raise ValueError(f"schedule: t values must lie in (0, 1] and end at 1, got [{ts[0]}, ..., {ts[-1]}]")
    return np.concatenate([[0.0], ts])


def combine_log_z(results) -> tuple[float, float]:
    """Combines independent runs as log mean_m Z_m (unbiased in Z) with its standard error."""
    if isinstance(results, (str, bytes, Mapping)) or not isinstance(results, Iterable):
        raise ValueError(f"results: expected a sequence of AnnealResults or log Z values, got {results!r}")
    results = list(results)
    bad = [r for r in results if not isinstance(r, (AnnealResult, numbers.Real)) or isinstance(r, bool)]
    if bad:
        raise ValueError(f"results: expected AnnealResults or real log Z values, got {bad[0]!r}")
    try:
        logs = np.array([r.log_z if isinstance(r, AnnealResult) else float(r) for r in results], float)
    except OverflowError as exc:
        raise ValueError(f"results: {exc}") from None
    if logs.size == 0 or not np.all(np.isfinite(logs)):
        raise ValueError("results: need at least one finite log Z")
    top = logs.max()
    ratios = np.exp(logs - top)
    log_z = top + np.log(ratios.mean())
    if logs.size < 2:
        return float(log_z), float("nan")
    rel = ratios / ratios.mean()
    return float(log_z), float(rel.std(ddof=1) / np.sqrt(logs.size))
