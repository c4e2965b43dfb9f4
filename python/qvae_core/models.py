"""Classical Boltzmann machines with binary units z in {0,1} (docs/conventions.md, "Units and energies").

RBM:               E(v, h) = -a.v - b.h - v^T W h, a state is [v, h] (visible first).
BoltzmannMachine:  E(z) = -sum_i b_i z_i - sum_k w_k z_{i_k} z_{j_k}, any sparse graph.
Ising form:        E(z) = sum_i h_i s_i + sum_k J_k s_{i_k} s_{j_k} + offset with s = 2z - 1.
Parameters are finite reals of magnitude at most MAX_PARAMETER = 1e6; they are read-only.
"""

from __future__ import annotations

import numpy as np

from . import _core
from ._validation import MAX_PARAMETER, binary_states, edge_array, finite_array, integer_array, positive_int

__all__ = ["RBM", "BoltzmannMachine"]


def _ising_from_binary(bias, edges, weights):
    """(h, J, offset) with E(z) = H(2z-1) + offset: J = -w/4, h = -b/2 - sum_j w_ij/4."""
    J = -weights / 4.0
    h = -bias / 2.0
    np.add.at(h, edges[:, 0], J)
    np.add.at(h, edges[:, 1], J)
    offset = float(h.sum() - J.sum())
    return h, J, offset


def binary_from_ising(h, edges, J, offset):
    """(bias, weights, constant) with H(s) + offset = E(z) + constant."""
    weights = -4.0 * J
    bias = -2.0 * h
    np.add.at(bias, edges[:, 0], 2.0 * J)
    np.add.at(bias, edges[:, 1], 2.0 * J)
    constant = float(offset - h.sum() + J.sum())
    return bias, weights, constant


class Immutable:
    """Base of the models (RBM, BoltzmannMachine, QBM): the attributes in `_frozen` are fixed once the compiled copy exists (set last in __init__), so
    the two never disagree; a subclass may add attributes of its own. A model pickles as the arguments that
    rebuild it (`_arguments`; the compiled copy is made anew), and two models are equal when those are."""

    _frozen: tuple = ("_compiled",)

    def __setattr__(self, name, value):
        if name in self._frozen and "_compiled" in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.{name}: the model is immutable; build a new one")
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        if name in self._frozen:
            raise AttributeError(f"{type(self).__name__}.{name}: the model is immutable")
        object.__delattr__(self, name)

    def _arguments(self) -> tuple:
        """(args, kwargs) that rebuild this model: pickling and equality use them."""
        raise NotImplementedError

    def __reduce__(self):
        args, kwargs = self._arguments()
        return _rebuild, (type(self), args, kwargs)

    def __eq__(self, other):
        """Same type and the same parameters, exactly."""
        if type(other) is not type(self):
            return NotImplemented
        return _same(self._arguments(), other._arguments())

    def __hash__(self):
        return hash((type(self), _bytes(self._arguments())))


def _rebuild(cls, args, kwargs):
    return cls(*args, **kwargs)


def _same(a, b) -> bool:
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


def _bytes(a):
    if isinstance(a, (tuple, list)):
        return tuple(_bytes(x) for x in a)
    if isinstance(a, dict):
        return tuple((k, _bytes(v)) for k, v in sorted(a.items()))
    if isinstance(a, np.ndarray):
        return (a.dtype.str, a.shape, a.tobytes())
    return a


class _Model(Immutable):
    """Shared behaviour: energies through the compiled model, read-only parameters."""

    _compiled: object

    @property
    def num_units(self) -> int:
        return self._compiled.num_units

    def energy(self, states) -> np.ndarray:
        """E(z) for each row of `states` (float64, shape (batch,)); a 1-D state gives shape (1,)."""
        return self._compiled.energy(binary_states(states, "states", self.num_units))


class RBM(_Model):
    """Restricted Boltzmann machine, E(v,h) = -a.v - b.h - v^T W h; weights of shape (nv, nh)."""

    _frozen = ("weights", "visible_bias", "hidden_bias", "_compiled")

    def __init__(self, weights, visible_bias, hidden_bias):
        self.weights = finite_array(weights, "weights", ndim=2, max_abs=MAX_PARAMETER)
        nv, nh = self.weights.shape
        if nv == 0 or nh == 0:
            raise ValueError(f"weights: both layers need at least one unit, got shape {(nv, nh)}")
        self.visible_bias = finite_array(visible_bias, "visible_bias", ndim=1, shape=(nv,), max_abs=MAX_PARAMETER)
        self.hidden_bias = finite_array(hidden_bias, "hidden_bias", ndim=1, shape=(nh,), max_abs=MAX_PARAMETER)
        self._compiled = _core.RbmModel(self.weights, self.visible_bias, self.hidden_bias)

    def _arguments(self):
        return (self.weights, self.visible_bias, self.hidden_bias), {}

    @property
    def num_visible(self) -> int:
        return self.weights.shape[0]

    @property
    def num_hidden(self) -> int:
        return self.weights.shape[1]

    @property
    def edges(self) -> np.ndarray:
        """All visible-hidden pairs (i, nv + j), row-major in W."""
        nv, nh = self.weights.shape
        i, j = np.meshgrid(np.arange(nv), np.arange(nh), indexing="ij")
        return np.stack([i.ravel(), nv + j.ravel()], axis=1).astype(np.int64)

    def to_boltzmann_machine(self) -> BoltzmannMachine:
        """The same energy as a general sparse BoltzmannMachine (units [v, h])."""
        return BoltzmannMachine(
            np.concatenate([self.visible_bias, self.hidden_bias]), self.edges, self.weights.ravel()
        )

    def to_ising(self):
        """(h, edges, J, offset) with E(z) = sum h_i s_i + sum J_k s_i s_j + offset, s = 2z - 1."""
        edges = self.edges
        bias = np.concatenate([self.visible_bias, self.hidden_bias])
        h, J, offset = _ising_from_binary(bias, edges, self.weights.ravel())
        return h, edges, J, offset

    @classmethod
    def from_ising(cls, h, edges, J, offset=0.0, *, num_visible: int):
        """Inverse of to_ising: returns (rbm, constant) with H(s) + offset = E(z) + constant.

        Every edge must join a visible unit (index < num_visible) to a hidden one; the constant is
        zero when the arguments came from to_ising.
        """
        h, edges, J, offset = _check_ising(h, edges, J, offset)
        n = h.shape[0]
        num_visible = positive_int(num_visible, "num_visible")
        if not num_visible < n:
            raise ValueError(f"num_visible: must be in [1, {n - 1}], got {num_visible}")
        lo, hi = edges.min(axis=1), edges.max(axis=1)
        if np.any(lo >= num_visible) or np.any(hi < num_visible):
            raise ValueError("edges: every edge must join a visible unit to a hidden unit")
        bias, weights, constant = binary_from_ising(h, edges, J, offset)
        W = np.zeros((num_visible, n - num_visible))
        np.add.at(W, (lo, hi - num_visible), weights)
        return cls(W, bias[:num_visible], bias[num_visible:]), constant

    def __repr__(self) -> str:
        return f"RBM(num_visible={self.num_visible}, num_hidden={self.num_hidden})"


class BoltzmannMachine(_Model):
    """Boltzmann machine on a sparse graph: E(z) = -sum_i b_i z_i - sum_k w_k z_{i_k} z_{j_k}.

    `edges` is an (m, 2) integer array of distinct unordered pairs without self-loops;
    `colors` (optional) is a proper colouring used as the block-Gibbs blocks, e.g. a D-Wave
    topology's `Topology.colors`; by default bipartite graphs (Chimera) get two colours and others
    a DSatur colouring (Pegasus 4, Zephyr 5).
    """

    _frozen = ("bias", "edges", "weights", "colors", "_compiled")

    def __init__(self, bias, edges, weights, *, colors=None):
        self.bias = finite_array(bias, "bias", ndim=1, max_abs=MAX_PARAMETER)
        n = self.bias.shape[0]
        if n == 0:
            raise ValueError("bias: the model needs at least one unit")
        self.edges = edge_array(edges, "edges", n)
        self.weights = finite_array(weights, "weights", ndim=1, shape=(self.edges.shape[0],), max_abs=MAX_PARAMETER)
        if colors is None:
            colors = _core.greedy_coloring(n, self.edges)
        else:  # the core checks the colouring is proper and non-negative, and renumbers it densely
            colors = integer_array(colors, "colors", np.int32, (n,))
        compiled = _core.GraphModel(n, self.bias, self.edges, self.weights, colors)
        self.colors = compiled.colors
        self.colors.flags.writeable = False
        self._compiled = compiled

    def _arguments(self):
        return (self.bias, self.edges, self.weights), {"colors": self.colors}

    @property
    def num_colors(self) -> int:
        return int(self.colors.max()) + 1

    def to_ising(self):
        """(h, edges, J, offset) with E(z) = sum h_i s_i + sum J_k s_i s_j + offset, s = 2z - 1."""
        h, J, offset = _ising_from_binary(self.bias, self.edges, self.weights)
        return h, self.edges.copy(), J, offset

    @classmethod
    def from_ising(cls, h, edges, J, offset=0.0):
        """Inverse of to_ising: returns (model, constant) with H(s) + offset = E(z) + constant.

        The constant is zero when the arguments came from to_ising.
        """
        h, edges, J, offset = _check_ising(h, edges, J, offset)
        bias, weights, constant = binary_from_ising(h, edges, J, offset)
        return cls(bias, edges, weights), constant

    def __repr__(self) -> str:
        return (
            f"BoltzmannMachine(num_units={self.num_units}, num_edges={self.edges.shape[0]}, "
            f"num_colors={self.num_colors})"
        )


def _check_ising(h, edges, J, offset):
    h = finite_array(h, "h", ndim=1, max_abs=MAX_PARAMETER)
    edges = edge_array(edges, "edges", h.shape[0])
    J = finite_array(J, "J", ndim=1, shape=(edges.shape[0],), max_abs=MAX_PARAMETER)
    offset = float(finite_array(offset, "offset", ndim=0))
    return h.copy(), edges, J, offset
