"""Quantum Boltzmann machines (CONVENTIONS.md, "Quantum Boltzmann machine").

H = E(z(sigma^z)) - sum_l Gamma_l sigma^x_l with z_l = (1 + sigma^z_l)/2 and Gamma_l >= 0, at inverse
temperature 1: p(z) = <z|e^{-H}|z> / Z, Z = Tr e^{-H}. Gamma = 0 is the classical model exactly.
"""

from __future__ import annotations

import numpy as np

from ._validation import binary_states, finite_array
from .models import RBM, BoltzmannMachine

__all__ = ["QBM"]


class QBM:
    """A classical RBM or BoltzmannMachine plus a transverse field Gamma (float or per unit)."""

    def __init__(self, model, gamma):
        if not isinstance(model, (RBM, BoltzmannMachine)):
            raise ValueError(f"model: expected an RBM or a BoltzmannMachine, got {type(model).__name__}")
        self.model = model
        n = model.num_units
        g = finite_array(gamma, "gamma", ndim=np.ndim(gamma))
        if g.ndim == 0:
            g = np.full(n, float(g))
        elif g.shape != (n,):
            raise ValueError(f"gamma: expected a float or shape ({n},), got shape {g.shape}")
        if np.any(g < 0):
            raise ValueError("gamma: transverse fields must be >= 0")
        g = np.ascontiguousarray(g, dtype=np.float64)
        g.flags.writeable = False
        self.gamma = g

    @property
    def num_units(self) -> int:
        return self.model.num_units

    def energy(self, states) -> np.ndarray:
        """The classical (diagonal) energy E(z) of each row of `states`."""
        return self.model.energy(binary_states(states, "states", self.num_units))

    def __repr__(self) -> str:
        return f"QBM({self.model!r}, gamma in [{self.gamma.min():g}, {self.gamma.max():g}])"
