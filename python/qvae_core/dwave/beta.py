"""Effective inverse temperature of QPU samples (paper 001, Eq. 17 and App. C).

A QPU programmed with the Ising problem H returns samples distributed approximately as
p(s) ~ exp(-beta_eff H(s)). Here H is given as a BoltzmannMachine (the `hardware model`: energy
E(z) = H(2z - 1) + const), and beta_eff is estimated from samples by

- maximum pseudo-likelihood: maximise sum_n sum_i log p_beta(z_i | z_rest) = sum log sigma(beta x_ni),
  x_ni = (2 z_ni - 1) (b_i + sum_j w_ij z_nj); concave in beta, solved by safeguarded Newton steps;
- the paper's Eq. C3: one gradient step on the log-likelihood of the samples,
  beta <- beta + lr (E_aux[E] - E_hw[E]), the auxiliary BM exp(-beta E) sampled by population annealing.

`PseudoLikelihood` and `AppendixC` wrap these as trackers for QPUSampler(beta_update=...).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._validation import binary_states, finite_array, positive_float, positive_int, seed_value
from ..annealing import MIN_POPULATION, anneal
from ..exact import sigmoid
from ..models import BoltzmannMachine

__all__ = ["BetaEstimate", "estimate_beta_pseudolikelihood", "appendix_c_update", "PseudoLikelihood", "AppendixC"]

_CHUNK_ELEMENTS = 2**22  # samples x edge-ends processed at once when computing local fields


class BetaEstimate(NamedTuple):
    """An estimate of beta_eff and its asymptotic (sandwich) standard error."""

    value: float
    stderr: float


def _check_model(model) -> BoltzmannMachine:
    if not isinstance(model, BoltzmannMachine):
        raise ValueError(f"model: expected a BoltzmannMachine, got {type(model).__name__}")
    return model


def _signed_fields(model: BoltzmannMachine, z: np.ndarray) -> np.ndarray:
    """x_ni = (2 z_ni - 1) * (b_i + sum_j w_ij z_nj), shape (num_samples, n)."""
    ends = np.concatenate([model.edges[:, 0], model.edges[:, 1]])
    others = np.concatenate([model.edges[:, 1], model.edges[:, 0]])
    weights = np.concatenate([model.weights, model.weights])
    fields = np.empty(z.shape, dtype=np.float64)
    step = max(1, _CHUNK_ELEMENTS // max(1, ends.size))
    for start in range(0, z.shape[0], step):
        block = z[start:start + step].astype(np.float64)
        local = np.broadcast_to(model.bias, block.shape).copy()
        np.add.at(local, (slice(None), ends), block[:, others] * weights)
        fields[start:start + step] = (2.0 * block - 1.0) * local
    return fields


def estimate_beta_pseudolikelihood(model, samples, *, max_iter: int = 100) -> BetaEstimate:
    """beta maximising the pseudo-likelihood of `samples` under p_beta(z) ~ exp(-beta E(z)).

    model: the hardware model (what the QPU was programmed with, as a BoltzmannMachine);
    samples: (N, n) 0/1 states, e.g. un-gauged QPU reads. The standard error is the sandwich
    estimate sqrt(sum_n g_n^2) / |sum_n g_n'| from the per-sample scores g_n.
    When the maximum lies at beta = +-inf (no sample has a unit against its local field, or none
    with it, e.g. every sample a local minimum) the value is +-inf with an infinite error.
    """
    model = _check_model(model)
    z = binary_states(samples, "samples", model.num_units)
    if z.shape[0] < 2:
        raise ValueError(f"samples: need at least 2 samples, got {z.shape[0]}")
    max_iter = positive_int(max_iter, "max_iter")
    x = _signed_fields(model, z).ravel()

    def score(beta):  # d/dbeta sum log sigma(beta x) = sum x sigma(-beta x)
        return float(np.sum(x * sigmoid(-beta * x)))

    # The score decreases in beta; bracket its root, then Newton steps kept inside the bracket.
    if np.all(x >= 0) or np.all(x <= 0):
        return BetaEstimate(float(np.inf if np.any(x > 0) else -np.inf if np.any(x < 0) else np.nan), np.inf)
    lo, hi = -1.0, 1.0
    while score(hi) > 0:
        lo, hi = hi, 2 * hi
    while score(lo) < 0:
        lo, hi = 2 * lo, lo
    beta = 0.5 * (lo + hi)
    for _ in range(max_iter):
        g = score(beta)
        curvature = float(np.sum(x * x * sigmoid(beta * x) * sigmoid(-beta * x)))
        if g > 0:
            lo = beta
        else:
            hi = beta
        step = beta + g / curvature if curvature > 0 else 0.5 * (lo + hi)
        new = step if lo < step < hi else 0.5 * (lo + hi)
        if abs(new - beta) <= 1e-12 * max(1.0, abs(beta)):
            beta = new
            break
        beta = new
    per_sample = (x * sigmoid(-beta * x)).reshape(z.shape).sum(axis=1)
    curvature = float(np.sum(x * x * sigmoid(beta * x) * sigmoid(-beta * x)))
    return BetaEstimate(float(beta), float(np.sqrt(np.sum(per_sample**2)) / curvature))


def _scaled(model: BoltzmannMachine, beta: float) -> BoltzmannMachine:
    """The model with energy beta * E(z)."""
    return BoltzmannMachine(beta * model.bias, model.edges, beta * model.weights, colors=model.colors)


def appendix_c_update(model, samples, beta: float, learning_rate: float, *, population: int = 1000,
                      seed=None) -> float:
    """One step of paper 001 Eq. C3: beta + learning_rate * (E_aux[E] - mean_n E(z_n)).

    model: the hardware model; samples: QPU states; the auxiliary BM is exp(-beta E), sampled by
    population annealing (`population` replicas, `seed`). The step is gradient ascent on the
    log-likelihood of the samples under p_beta.
    """
    model = _check_model(model)
    z = binary_states(samples, "samples", model.num_units)
    beta = positive_float(beta, "beta")
    learning_rate = positive_float(learning_rate, "learning_rate")
    auxiliary = anneal(_scaled(model, beta), population=population, seed=seed).samples
    return beta + learning_rate * float(model.energy(auxiliary).mean() - model.energy(z).mean())


class PseudoLikelihood:
    """beta_eff tracker: after each batch, beta_eff <- (1 - smoothing) * estimate + smoothing * beta_eff.

    Uninformative batches leave beta_eff as it is: no finite maximum, a non-positive estimate, or a
    standard error above max_relative_stderr * estimate (e.g. a prior near zero early in training).
    """

    def __init__(self, smoothing: float = 0.0, *, max_relative_stderr: float = 0.1):
        self.smoothing = float(finite_array(smoothing, "smoothing", ndim=0))
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"smoothing: must be in [0, 1), got {self.smoothing}")
        self.max_relative_stderr = positive_float(max_relative_stderr, "max_relative_stderr")

    def __call__(self, model, samples, beta_eff: float) -> float:
        estimate = estimate_beta_pseudolikelihood(model, samples)
        if not 0.0 < estimate.value < np.inf or estimate.stderr > self.max_relative_stderr * estimate.value:
            return beta_eff
        return (1.0 - self.smoothing) * estimate.value + self.smoothing * beta_eff

    def __repr__(self) -> str:
        return f"PseudoLikelihood(smoothing={self.smoothing}, max_relative_stderr={self.max_relative_stderr})"


class AppendixC:
    """beta_eff tracker of paper 001 App. C: one Eq. C3 step per batch (PA seeds drawn from `seed`)."""

    def __init__(self, learning_rate: float, *, population: int = 1000, seed=None):
        self.learning_rate = positive_float(learning_rate, "learning_rate")
        self.population = positive_int(population, "population", minimum=MIN_POPULATION)
        self._rng = np.random.default_rng(seed_value(seed))

    def __call__(self, model, samples, beta_eff: float) -> float:
        seed = int(self._rng.integers(2**63))
        return appendix_c_update(model, samples, beta_eff, self.learning_rate, population=self.population, seed=seed)

    def __repr__(self) -> str:
        return f"AppendixC(learning_rate={self.learning_rate}, population={self.population})"
