"""Quantum Boltzmann machines (docs/conventions.md, "The quantum Boltzmann machine").

H = E(z(sigma^z)) - sum_l Gamma_l sigma^x_l with z_l = (1 + sigma^z_l)/2 and Gamma_l >= 0, at inverse
temperature 1: p(z) = <z|e^{-H}|z> / Z, Z = Tr e^{-H}. Gamma = 0 is the classical model exactly.
log Z and log <z|e^{-H}|z> come from population annealing (annealing.anneal, annealing.log_diag).
"""

from __future__ import annotations

import numpy as np

from . import _core
from ._validation import finite_array, integer_array
from .kinds import core_kind
from .models import Immutable
from .samplers import PersistentSampler, serialised

__all__ = ["QBM", "PathIntegralSampler", "MAX_GAMMA"]

MAX_GAMMA = _core.MAX_GAMMA  # largest transverse field (500): a worldline holds ~Gamma_l kinks


class QBM(Immutable):
    """A classical RBM or BoltzmannMachine plus a transverse field Gamma (float or per unit),
    0 <= Gamma_l <= 500 (a path-integral worldline holds ~Gamma_l kinks)."""

    _frozen = ("model", "gamma", "_compiled")

    def __init__(self, model, gamma):
        kind = core_kind(model)
        if kind is None or kind.quantum:
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
        # 0 <= Gamma_l <= MAX_GAMMA.
        self._compiled = kind.path_integral(model._compiled, g)

    def _arguments(self):
        return (self.model, self.gamma), {}

    @property
    def num_units(self) -> int:
        return self.model.num_units

    def energy(self, states) -> np.ndarray:
        """The classical (diagonal) energy E(z) of each row of `states`."""
        return self.model.energy(states)  # which validates them

    def __repr__(self) -> str:
        return f"QBM({self.model!r}, gamma in [{self.gamma.min():g}, {self.gamma.max():g}])"


class PathIntegralSampler(PersistentSampler):
    """`num_chains` persistent continuous-time worldline chains of a QBM (no Trotter discretisation).

    A sweep updates each block (the visible then the hidden layer of an RBM, or the colour classes
    of a BoltzmannMachine) by cluster moves along imaginary time: Poisson(Gamma_l) cuts, heat bath
    on the segments (docs/conventions.md, "The path-integral weight"). `.run(k)` returns the tau = 0
    slices, distributed as p(z) = <z|e^{-H}|z> / Z once equilibrated. Reproducible for a seed
    whatever `num_threads`. `run` releases the GIL; calls made from several Python threads wait
    for each other. A `checkpoint()` also holds the kinks: chain c's are kink_times[o[c]:o[c+1]] on
    kink_units[o[c]:o[c+1]], o = kink_offsets.
    """

    _argument = "qbm"
    _expected = "a QBM"
    _quantum = True
    _extra_checkpoint_keys = ("kink_offsets", "kink_times", "kink_units")

    def __init__(self, qbm: QBM, num_chains: int, *, seed=None, initial_state=None, num_threads=None):
        # only to keep the keyword `qbm` (the base calls it `model`)
        super().__init__(qbm, num_chains, seed=seed, initial_state=initial_state, num_threads=num_threads)

    @property
    def qbm(self) -> QBM:
        """The QBM the worldlines sample."""
        return self._model

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

    def _extra_checkpoint(self) -> dict:
        offsets, times, units = self._chains.kinks
        return {"kink_offsets": offsets, "kink_times": times, "kink_units": units}

    def _restore_extra(self, chains, parts: dict) -> None:
        times = finite_array(parts["kink_times"], "checkpoint['kink_times']", ndim=1)
        offsets = integer_array(parts["kink_offsets"], "checkpoint['kink_offsets']", np.int64, (self.num_chains + 1,))
        units = integer_array(parts["kink_units"], "checkpoint['kink_units']", np.int32, times.shape)
        try:
            chains.set_kinks(offsets, times, units)
        except ValueError as exc:
            raise ValueError(f"checkpoint: {exc}") from None
