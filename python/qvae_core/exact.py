"""Exact references by enumeration (CONVENTIONS.md, "Exact references").

RBMs sum out the larger layer analytically and enumerate the smaller one:
    log Z = logsumexp_x [c.x + sum_j softplus(d_j + (x M)_j)]      (2^min(nv, nh) terms);
other Boltzmann machines enumerate all 2^n states. Work is done in chunks of states, so memory
stays bounded; more than MAX_ENUMERATED_UNITS enumerated units is refused.
"""

from __future__ import annotations

import numpy as np

from ._validation import binary_states
from .models import RBM, BoltzmannMachine

__all__ = ["MAX_ENUMERATED_UNITS", "log_z", "log_prob", "marginals", "correlations"]

MAX_ENUMERATED_UNITS = 24
_CHUNK = 1 << 14


def _softplus(x):
    return np.logaddexp(0.0, x)


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class _Enumeration:
    """Chunks of enumerated states with their log-weights and the expected full states."""

    def __init__(self, model):
        if isinstance(model, RBM):
            nv, nh = model.num_visible, model.num_hidden
            self.swap = nh < nv  # enumerate the smaller layer
            if self.swap:
                self.c, self.d, self.M = model.hidden_bias, model.visible_bias, model.weights.T
            else:
                self.c, self.d, self.M = model.visible_bias, model.hidden_bias, model.weights
            self.k = self.c.shape[0]
            self.kind = "rbm"
        elif isinstance(model, BoltzmannMachine):
            self.k = model.num_units
            self.model = model
            self.kind = "bm"
        else:
            raise ValueError(f"model: expected an RBM or a BoltzmannMachine, got {type(model).__name__}")
        if self.k > MAX_ENUMERATED_UNITS:
            raise ValueError(
                f"model: exact enumeration needs {self.k} enumerated units, more than "
                f"MAX_ENUMERATED_UNITS = {MAX_ENUMERATED_UNITS}"
            )

    def chunks(self):
        """Yields (logw, X, Y): log-weights, enumerated states and E[summed-out layer | X]."""
        bits = np.arange(self.k)
        for start in range(0, 1 << self.k, _CHUNK):
            idx = np.arange(start, min(start + _CHUNK, 1 << self.k), dtype=np.int64)
            X = ((idx[:, None] >> bits) & 1).astype(np.float64)
            if self.kind == "rbm":
                field = self.d + X @ self.M
                yield X @ self.c + _softplus(field).sum(axis=1), X, _sigmoid(field)
            else:
                yield -self.model.energy(X.astype(np.uint8)), X, None

    def assemble(self, x_part, y_part):
        """Reorders (enumerated, summed-out) blocks into model unit order [v, h]."""
        if self.kind == "bm":
            return x_part
        return np.concatenate([y_part, x_part]) if self.swap else np.concatenate([x_part, y_part])


def log_z(model) -> float:
    """log Z = log sum_z exp(-E(z)), exactly."""
    enum = _Enumeration(model)
    parts = [np.logaddexp.reduce(logw) for logw, _, _ in enum.chunks()]
    return float(np.logaddexp.reduce(np.array(parts)))


def log_prob(model, states) -> np.ndarray:
    """log p(z) = -E(z) - log Z for each row of `states`."""
    states = binary_states(states, "states", model.num_units)
    return -model.energy(states) - log_z(model)


def _moments(model, second: bool):
    enum = _Enumeration(model)
    lz = log_z(model)
    k = enum.k
    ky = 0 if enum.kind == "bm" else enum.d.shape[0]
    mx, my = np.zeros(k), np.zeros(ky)
    cxx, cxy, cyy = np.zeros((k, k)), np.zeros((k, ky)), np.zeros((ky, ky))
    for logw, X, Y in enum.chunks():
        w = np.exp(logw - lz)
        mx += w @ X
        if second:
            cxx += X.T @ (w[:, None] * X)
        if Y is not None:
            my += w @ Y
            if second:
                cxy += X.T @ (w[:, None] * Y)
                cyy += Y.T @ (w[:, None] * Y)
    means = enum.assemble(mx, my)
    if not second:
        return means
    if enum.kind == "bm":
        return means, cxx
    np.fill_diagonal(cyy, my)  # h_j^2 = h_j; off-diagonal terms factorise given x
    top = np.hstack([cxx, cxy])
    bottom = np.hstack([cxy.T, cyy])
    full = np.vstack([top, bottom])
    if enum.swap:
        order = np.r_[k:k + ky, 0:k]
        full = full[np.ix_(order, order)]
    return means, full


def marginals(model) -> np.ndarray:
    """E[z_i] for every unit, in model order ([v, h] for an RBM)."""
    return _moments(model, second=False)


def correlations(model) -> np.ndarray:
    """E[z_i z_j] as an (n, n) matrix (diagonal = marginals), in model order."""
    return _moments(model, second=True)[1]
