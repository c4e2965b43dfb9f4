"""Exact references by enumeration and diagonalisation (docs/conventions.md, "Exact references").

Classical models: RBMs sum out the larger layer analytically and enumerate the smaller one:
    log Z = logsumexp_x [c.x + sum_j softplus(d_j + (x M)_j)]      (2^min(nv, nh) terms);
other Boltzmann machines enumerate all 2^n states.

Quantum Boltzmann machines (`QBM`, H = E(z) - sum_l Gamma_l sigma^x_l), with Z = Tr e^{-H} and
p(z) = <z|e^{-H}|z> / Z; Gamma = 0 is routed to the classical code. Closed forms first:
  * one qubit with field f (energy -f z) and Gamma, omega = sqrt(f^2/4 + Gamma^2):
        Tr = e^{f/2} 2 cosh(omega),  <z|e^{-H}|z> = e^{f/2} (cosh(omega) + (2z-1)(f/2) sinh(omega)/omega);
  * Gamma only on one layer of an RBM: that layer is summed out given the other (enumerated) layer x as
    independent qubits with fields f = d + x M, log<x,y|e^{-H}|x,y> = c.x + sum_j log<y_j|e^{-H_j(f_j)}|y_j>,
    so log Z = logsumexp_x [c.x + sum_j log Tr_j] (2^n_x terms for any size of the other layer), and
    E[y_j | x] = <1|e^{-H_j}|1> / Tr_j because p(x, y) factorises over y given x;
  * no couplings (W = 0): every unit is an independent qubit (no enumerated units).
Otherwise, for n <= MAX_DIAGONALISED_UNITS, the dense 2^n x 2^n H (bit l of a basis index is z_l) is
diagonalised, H = U diag(lambda) U^T: log Z = logsumexp(-lambda) = logsumexp_z log<z|e^{-H}|z> and
    log<z|e^{-H}|z> = -lambda_0 + log sum_k e^{-(lambda_k - lambda_0)} U_zk^2     (lambda_0 = min lambda).
Work is done in chunks of states, so memory stays bounded; more than MAX_ENUMERATED_UNITS enumerated
units is refused.
"""

from __future__ import annotations

import numpy as np

from ._validation import binary_states
from .models import RBM, BoltzmannMachine
from .quantum import QBM

__all__ = [
    "MAX_ENUMERATED_UNITS",
    "MAX_DIAGONALISED_UNITS",
    "log_z",
    "log_prob",
    "log_diag",
    "marginals",
    "correlations",
]

MAX_ENUMERATED_UNITS = 24
MAX_DIAGONALISED_UNITS = 12
_CHUNK = 1 << 14


def softplus(x):
    """log(1 + e^x) without overflow."""
    return np.logaddexp(0.0, x)


def sigmoid(x):
    """The logistic function 1 / (1 + e^-x) without overflow."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _states(idx, k):
    """Enumerated states as float64 rows: unit l of state idx is bit l of idx."""
    return ((idx[:, None] >> np.arange(k)) & 1).astype(np.float64)


def _qubit(f, gamma):
    """One qubit, energy -f z and field Gamma (module docstring): (log Tr, log p(1), log p(0)), p = diag/Tr.

    With omega = hypot(f/2, Gamma), rho = |f|/(2 omega) (0 at omega = 0) and t = e^{-2 omega}:
        log Tr = logaddexp(f/2 + omega, f/2 - omega),
        p(lower-energy state)  = [(1 + rho) + (1 - rho) t] / (2 (1 + t)),
        p(higher-energy state) = [(1 - rho) + (1 + rho) t] / (2 (1 + t)),
    with 1 - rho = (Gamma/omega) (Gamma/(omega + |f|/2)) free of cancellation; all in log space.
    """
    a = 0.5 * np.abs(f)
    omega = np.hypot(a, gamma)
    log_tr = np.logaddexp(0.5 * f + omega, 0.5 * f - omega)
    zero = omega == 0
    safe = np.where(zero, 1.0, omega)
    rho = np.where(zero, 0.0, a / safe)
    rho_bar = np.where(zero, 1.0, (gamma / safe) * (gamma / (safe + a)))
    log_rho_bar = np.log(rho_bar, out=np.full_like(rho_bar, -np.inf), where=rho_bar > 0)
    t = np.exp(-2.0 * omega)
    norm = np.log(2.0) + np.log1p(t)
    low = np.log1p(rho + rho_bar * t) - norm
    high = np.logaddexp(log_rho_bar, np.log1p(rho) - 2.0 * omega) - norm
    up = f >= 0  # z = 1 has the lower energy
    return log_tr, np.where(up, low, high), np.where(up, high, low)


def _dense_log_diag(model, gamma):
    """log<z|e^{-H}|z> for every basis state (bit l of the index is z_l) by eigh of the dense H.

    The absolute error is ~1e-15 Z, so states with p(z) below ~1e-13 get only that absolute accuracy.
    """
    n = model.num_units
    idx = np.arange(1 << n)
    H = np.diag(model.energy(_states(idx, n)))
    for l, g in enumerate(gamma):
        H[idx, idx ^ (1 << l)] = -g
    lam, U = np.linalg.eigh(H)
    return -lam[0] + np.log(np.square(U, out=U) @ np.exp(lam[0] - lam))


class _Enumeration:
    """Enumerated units X (chunks of 2^k states) and the other units Y summed out given X.

    The Y units are independent given X with fields f = d + X M: classical units (softplus, sigmoid)
    or, when `gamma` (of the Y units) is given, qubits (_qubit); log-weight of X = x_weight(X) +
    sum_j log Tr_j(f_j). A model without Y units gives x_weight = -E (classical) or the dense table.
    """

    def __init__(self, model, x_idx, x_weight, *, d=None, M=None, gamma=None):
        self.model, self.x_weight, self.gamma = model, x_weight, gamma
        self.x_idx = np.asarray(x_idx, dtype=np.int64)
        self.y_idx = np.setdiff1d(np.arange(model.num_units), self.x_idx)
        self.k = self.x_idx.shape[0]
        self.d = np.zeros(0) if d is None else d
        self.M = np.zeros((self.k, 0)) if M is None else M
        if self.k > MAX_ENUMERATED_UNITS:
            raise ValueError(
                f"model: exact enumeration needs {self.k} enumerated units, more than "
                f"MAX_ENUMERATED_UNITS = {MAX_ENUMERATED_UNITS}"
            )

    def chunks(self):
        """Yields (logw, X, Y): log-weights, enumerated states and E[Y | X]."""
        for start in range(0, 1 << self.k, _CHUNK):
            X = _states(np.arange(start, min(start + _CHUNK, 1 << self.k), dtype=np.int64), self.k)
            field = self.d + X @ self.M
            if self.gamma is None:
                log_tr, Y = softplus(field), sigmoid(field)
            else:
                log_tr, log_p1, _ = _qubit(field, self.gamma)
                Y = np.exp(log_p1)
            yield self.x_weight(X) + log_tr.sum(axis=1), X, Y

    def log_z(self) -> float:
        parts = [np.logaddexp.reduce(logw) for logw, _, _ in self.chunks()]
        return float(np.logaddexp.reduce(np.array(parts)))

    def log_weight(self, states):
        """log<z|e^{-H}|z> (-E(z) for a classical model) of validated full states."""
        if self.y_idx.size == 0:  # every unit enumerated: the weight is x_weight's (-E or the dense table)
            return self.x_weight(states[:, self.x_idx].astype(np.float64))
        if self.gamma is None:
            return -self.model.energy(states)
        X, Y = states[:, self.x_idx].astype(np.float64), states[:, self.y_idx]
        log_tr, log_p1, log_p0 = _qubit(self.d + X @ self.M, self.gamma)
        return self.x_weight(X) + (log_tr + np.where(Y == 1, log_p1, log_p0)).sum(axis=1)

    def unit_order(self):
        """Position of each model unit in the (X, Y) block order."""
        return np.argsort(np.concatenate([self.x_idx, self.y_idx]))


def _unpack(model):
    """(classical model, transverse fields, or None when there are none)."""
    gamma = None
    if isinstance(model, QBM):
        model, gamma = model.model, (model.gamma if model.gamma.any() else None)
    if not isinstance(model, (RBM, BoltzmannMachine)):
        raise ValueError(f"model: expected an RBM, a BoltzmannMachine or a QBM, got {type(model).__name__}")
    return model, gamma


def _enumeration(model) -> _Enumeration:
    """The cheapest exact scheme: classical enumeration, a closed form, or dense diagonalisation."""
    model, gamma = _unpack(model)
    n = model.num_units
    if gamma is not None and not model.weights.any():  # independent qubits: nothing to enumerate
        bias = np.r_[model.visible_bias, model.hidden_bias] if isinstance(model, RBM) else model.bias
        return _Enumeration(model, [], lambda X: np.zeros(len(X)), d=bias, M=np.zeros((0, n)), gamma=gamma)
    if isinstance(model, RBM):
        nv = model.num_visible
        field_v = gamma is not None and gamma[:nv].any()
        field_h = gamma is not None and gamma[nv:].any()
        if not (field_v and field_h):
            # enumerate a layer without transverse field: the smaller one when both qualify
            swap = field_v or (not field_h and model.num_hidden < nv)
            layers = [(np.arange(nv), model.visible_bias), (np.arange(nv, n), model.hidden_bias)]
            (x, c), (y, d) = layers[::-1] if swap else layers
            M = model.weights.T if swap else model.weights
            gamma_y = None if gamma is None else gamma[y]
            return _Enumeration(model, x, lambda X: X @ c, d=d, M=M, gamma=gamma_y)
    if gamma is None:
        return _Enumeration(model, np.arange(n), lambda X: -model.energy(X))
    if n > MAX_DIAGONALISED_UNITS:
        raise ValueError(
            f"model: a QBM with transverse fields on coupled units needs dense diagonalisation of "
            f"{n} units, more than MAX_DIAGONALISED_UNITS = {MAX_DIAGONALISED_UNITS}"
        )
    table = _dense_log_diag(model, gamma)
    powers = 1 << np.arange(n)
    # no Y units: the fields enter only through the table
    return _Enumeration(model, np.arange(n), lambda X: table[X.astype(np.int64) @ powers])


def log_z(model) -> float:
    """log Z: log sum_z exp(-E(z)) for a classical model, log Tr e^{-H} for a QBM, exactly."""
    return _enumeration(model).log_z()


def log_diag(model, states) -> np.ndarray:
    """log<z|e^{-H}|z> for each row of `states` (-E(z) for a classical model), exactly."""
    states = binary_states(states, "states", _unpack(model)[0].num_units)
    return _enumeration(model).log_weight(states)


def log_prob(model, states) -> np.ndarray:
    """log p(z) = -E(z) - log Z (classical) or log<z|e^{-H}|z> - log Z (QBM) for each row of `states`."""
    states = binary_states(states, "states", _unpack(model)[0].num_units)
    enum = _enumeration(model)
    return enum.log_weight(states) - enum.log_z()


def _moments(model, second: bool):
    enum = _enumeration(model)
    lz = enum.log_z()
    k, ky = enum.k, enum.y_idx.shape[0]
    mx, my = np.zeros(k), np.zeros(ky)
    cxx, cxy, cyy = np.zeros((k, k)), np.zeros((k, ky)), np.zeros((ky, ky))
    for logw, X, Y in enum.chunks():
        w = np.exp(logw - lz)
        mx += w @ X
        my += w @ Y
        if second:
            cxx += X.T @ (w[:, None] * X)
            cxy += X.T @ (w[:, None] * Y)
            cyy += Y.T @ (w[:, None] * Y)
    order = enum.unit_order()
    means = np.concatenate([mx, my])[order]
    if not second:
        return means
    np.fill_diagonal(cyy, my)  # y_j^2 = y_j; off-diagonal terms factorise given x
    return means, np.block([[cxx, cxy], [cxy.T, cyy]])[np.ix_(order, order)]


def marginals(model) -> np.ndarray:
    """E[z_i] for every unit, in model order ([v, h] for an RBM); p(z) = <z|e^{-H}|z>/Z for a QBM."""
    return _moments(model, second=False)


def correlations(model) -> np.ndarray:
    """E[z_i z_j] as an (n, n) matrix (diagonal = marginals), in model order."""
    return _moments(model, second=True)[1]
