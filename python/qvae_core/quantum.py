"""Quantum Boltzmann machines (CONVENTIONS.md, "Quantum Boltzmann machine").

H = E(z(sigma^z)) - sum_l Gamma_l sigma^x_l with z_l = (1 + sigma^z_l)/2 and Gamma_l >= 0, at inverse
temperature 1: p(z) = <z|e^{-H}|z> / Z, Z = Tr e^{-H}. Gamma = 0 is the classical model exactly.
"""

from __future__ import annotations

import threading

import numpy as np

from . import _core
from ._validation import (NUM_SUBPOPULATIONS, anneal_settings, binary_states, checkpoint_parts, finite_array,
                          fits_in_memory, integer_array, positive_int, seed_value)
from ._validation import num_threads as num_threads_arg
from .models import RBM, BoltzmannMachine, _Immutable
from .samplers import _restored_chains, serialised

__all__ = ["QBM", "PathIntegralSampler", "log_diag"]


class QBM(_Immutable):
    """A classical RBM or BoltzmannMachine plus a transverse field Gamma (float or per unit),
    0 <= Gamma_l <= 500 (a path-integral worldline holds ~Gamma_l kinks)."""

    _frozen = ("model", "gamma", "_is_rbm", "_compiled")

    def __init__(self, model, gamma):
        if not isinstance(model, (RBM, BoltzmannMachine)):
            raise ValueError(f"model: expected an RBM or a BoltzmannMachine, got {type(model).__name__}")
        self.model = model
        n = model.num_units
        try:
            ndim = np.ndim(gamma)
        except ValueError:  # ragged
            raise ValueError(f"gamma: expected a float or a flat array, got {gamma!r}") from None
        g = finite_array(gamma, "gamma", ndim=ndim)
        if g.ndim == 0:
            g = np.full(n, float(g))
        elif g.shape != (n,):
            raise ValueError(f"gamma: expected a float or shape ({n},), got shape {g.shape}")
        g = np.ascontiguousarray(g, dtype=np.float64)
        g.flags.writeable = False
        self.gamma = g
        # The C++ path-integral model (RBM layers or colour classes as blocks); it checks that
        # 0 <= Gamma_l <= _core.MAX_GAMMA (500).
        self._is_rbm = isinstance(model, RBM)
        kind = _core.QmcRbmModel if self._is_rbm else _core.QmcGraphModel
        self._compiled = kind(model._compiled, g)

    @property
    def num_units(self) -> int:
        return self.model.num_units

    def energy(self, states) -> np.ndarray:
        """The classical (diagonal) energy E(z) of each row of `states`."""
        return self.model.energy(states)  # which validates them

    def __repr__(self) -> str:
        return f"QBM({self.model!r}, gamma in [{self.gamma.min():g}, {self.gamma.max():g}])"


class PathIntegralSampler:
    """Persistent continuous-time worldline chains of a QBM (no Trotter discretisation).

    A sweep updates each block (the visible then the hidden layer of an RBM, or the colour classes
    of a BoltzmannMachine) by cluster moves along imaginary time: Poisson(Gamma_l) cuts, heat bath
    on the segments (CONVENTIONS.md). `.run(k)` returns the tau = 0 slices, distributed as
    p(z) = <z|e^{-H}|z> / Z once equilibrated. Reproducible for a seed whatever `num_threads`.
    `run` releases the GIL; calls made from several Python threads wait for each other.
    """

    def __init__(self, qbm: QBM, num_chains: int, *, seed=None, initial_state=None, num_threads=None):
        self._lock = threading.RLock()
        if not isinstance(qbm, QBM):
            raise ValueError(f"qbm: expected a QBM, got {type(qbm).__name__}")
        self.qbm = qbm
        self.num_chains = fits_in_memory(positive_int(num_chains, "num_chains"), qbm.num_units, "num_chains")
        self.seed = seed_value(seed)
        self.num_threads = num_threads_arg(num_threads)
        init = None
        if initial_state is not None:
            init = binary_states(initial_state, "initial_state", qbm.num_units, rows=self.num_chains)
        chains = _core.QmcRbmChains if qbm._is_rbm else _core.QmcGraphChains
        self._chains = chains(qbm._compiled, self.num_chains, self.seed, init)

    @serialised
    def run(self, num_sweeps: int) -> np.ndarray:
        """Advance every chain by num_sweeps sweeps; returns the (num_chains, n) uint8 tau = 0 slices."""
        self._chains.run(positive_int(num_sweeps, "num_sweeps", minimum=0), 1.0, self.num_threads)
        return self.state

    @property
    @serialised
    def state(self) -> np.ndarray:
        """The tau = 0 slices, (num_chains, n) uint8."""
        return self._chains.state

    @property
    @serialised
    def mean_kinks_per_unit(self) -> float:
        """Mean number of kinks per worldline; its expectation for unit l is Gamma_l |<sigma^x_l>|."""
        return self._chains.mean_kinks_per_unit

    @property
    @serialised
    def energy_integrals(self) -> np.ndarray:
        """int_0^1 E(z(tau)) dtau of every worldline, (num_chains,) float64. Its mean over equilibrated
        chains estimates <E(sigma^z)> = Tr(E e^{-H}) / Z, the classical part of the QBM energy."""
        return self._chains.energy_integrals

    @property
    @serialised
    def kink_counts(self) -> np.ndarray:
        """Kinks of every worldline, (num_chains, n) int64."""
        return self._chains.kink_counts

    @serialised
    def checkpoint(self) -> dict:
        """All that determines the chains' future: the tau = 0 `state`, the random `streams` and the
        kinks (chain c's are kink_times[o[c]:o[c+1]] on kink_units[...], o = `kink_offsets`).
        `restore` continues from it exactly."""
        offsets, times, units = self._chains.kinks
        return {"state": self.state, "streams": self._chains.streams,
                "kink_offsets": offsets, "kink_times": times, "kink_units": units}

    @serialised
    def restore(self, checkpoint) -> None:
        """Continue from a `checkpoint()` of as many chains of as many units: the next runs draw what
        the checkpointed sampler's would have, under this sampler's QBM (its seed no longer matters)."""
        offsets, times, units = checkpoint_parts(checkpoint, ("kink_offsets", "kink_times", "kink_units"))
        chains = _restored_chains(self._chains, self.qbm._compiled, self.seed, checkpoint)
        times = finite_array(times, "checkpoint['kink_times']", ndim=1)
        try:
            chains.set_kinks(integer_array(offsets, "checkpoint['kink_offsets']", np.int64, (self.num_chains + 1,)),
                             times, integer_array(units, "checkpoint['kink_units']", np.int32, times.shape))
        except ValueError as exc:
            raise ValueError(f"checkpoint: {exc}") from None
        self._chains = chains

    @serialised
    def set_model(self, qbm: QBM) -> None:
        """Continue the same worldlines under new parameters (same kind, units and blocks)."""
        if not isinstance(qbm, QBM) or qbm._is_rbm != self.qbm._is_rbm:
            raise ValueError("qbm: expected a QBM of the same kind as the sampler's")
        try:
            self._chains.set_model(qbm._compiled)
        except ValueError as exc:
            raise ValueError(f"qbm: {exc}") from None
        self.qbm = qbm


def log_diag(
    qbm: QBM,
    states,
    *,
    population: int = 500,
    seed=None,
    sweeps_per_step: int = 5,
    target_ess: float = 0.999,
    num_subpopulations: int = NUM_SUBPOPULATIONS,
    max_steps: int = 100_000,
    num_threads=None,
):
    """log <z|e^{-H}|z> for each row of `states` by clamped-slice population annealing (Eq. E4 of
    paper 000): the tau = 0 slice is fixed to z, paths start from the exact transverse-field
    reference (log value sum_l log cosh Gamma_l) and the diagonal part is annealed in.

    Returns (log_diag, log_diag_std), each of shape (batch,). Parallel over the batch;
    log p_QBM(z) = log_diag - log Z.
    """
    if not isinstance(qbm, QBM):
        raise ValueError(f"qbm: expected a QBM, got {type(qbm).__name__}")
    states = binary_states(states, "states", qbm.num_units)
    settings = anneal_settings(population, sweeps_per_step, target_ess, num_subpopulations, max_steps)
    population, sweeps_per_step, target, num_subpopulations, max_steps = settings
    fits_in_memory(population, qbm.num_units, "population")
    run = _core.log_diag_qmc_rbm if qbm._is_rbm else _core.log_diag_qmc_graph
    out = run(qbm._compiled, states, population, seed_value(seed), sweeps_per_step, target,
              num_subpopulations, max_steps, num_threads_arg(num_threads))
    return out["log_diag"], out["log_diag_std"]
