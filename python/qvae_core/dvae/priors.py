"""Priors p(z) over the binary latents: factorial Bernoulli, RBM, Boltzmann machine on a graph, QBM.

All share one contract (docs/conventions.md signs, p(z) = e^{-E(z)} / Z, binary units):

    energy(z)                     E(z) of each row, (B,)
    expected_energy(q, post, g)   unbiased estimate of E_q[E(z)] from one hierarchical draw, (B,)
    log_partition_surrogate(s)    log Z, or a stand-in with the gradient of log Z from model samples s
    marginal_logits()             logit P(z_l = 1) of each unit under the prior (KL balancing), (n,)
    numpy_model()                 the qvae_core model the C++ samplers take (RBM, BoltzmannMachine, QBM)
    log_partition(...), sample(...)   log Z with its standard error, and prior samples

so the KL's cross-entropy E_q[E(z)] + log Z has gradient "positive phase minus negative phase"
(paper 000 Eq. 30-31). With a transverse field Γ > 0 the prior is a QBM: training uses the classical
energy in the positive phase and QBM samples in the negative phase (the Q-ELBO, paper 000 Eq. 35-36).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import qvae_core as q

from .. import distributed
from ..annealing import LOG_Z_POPULATION, MIN_POPULATION

__all__ = ["Prior", "BernoulliPrior", "RBMPrior", "GraphPrior", "PriorKind", "PRIORS"]

_INIT_WEIGHT_SCALE = 0.01
_SAMPLE_POPULATION = 1000  # PA with fewer replicas has too few per sub-population
LOG_Z_RUNS = 8  # independent runs of a log Z estimate spread over a Dask client


class Prior(nn.Module):
    """Base class. `gamma` is the transverse field (0: classical); `needs_sampler` is False when log Z
    is known in closed form."""

    needs_sampler = True

    def __init__(self, num_units: int, gamma: float = 0.0):
        super().__init__()
        gamma = float(gamma)
        if not (np.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"gamma: the transverse field must be finite and >= 0, got {gamma}")
        self.num_units = num_units
        self.gamma = gamma
        if self.needs_sampler:  # the last negative phase's estimate of logit P(z_l = 1) (marginal_logits)
            self.register_buffer("sample_marginal_logits", torch.full((num_units,), float("nan")))
            self.register_load_state_dict_pre_hook(_unrecorded_marginals)

    def extra_repr(self) -> str:
        return f"num_units={self.num_units}, gamma={self.gamma:g}"

    def energy(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def expected_energy(self, q: torch.Tensor, post: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
        """E_q[E(z)] estimated from one hierarchical draw: q (B, n) are the conditional probabilities
        q(z_l = 1 | ζ_{<g(l)}, x), post (B, n) the smoothing's P(z_l = 1 | ζ_l, ...), group (n,) the
        group of each unit. E[z_l] = E[q_l]; for a coupling (i, j), z_i and z_j are independent given
        the ζ of the earlier groups, so E[z_i z_j] = E[q_i q_j] in one group and E[post_i q_j] when i's
        group comes first (patent [0122])."""
        raise NotImplementedError

    def log_partition_surrogate(self, model_samples: torch.Tensor | None) -> torch.Tensor:
        """-mean E(model samples): its gradient is that of log Z (-E_p[∂E]), its value is not log Z.
        Records the samples' unit marginals for marginal_logits."""
        with torch.no_grad():
            ones = model_samples.sum(0)
            self.sample_marginal_logits.copy_(torch.log(ones + 0.5) - torch.log(model_samples.shape[0] - ones + 0.5))
        return -self.energy(model_samples).mean()

    def marginal_logits(self) -> torch.Tensor | None:
        """logit P(z_l = 1) under the prior, (n,), detached; None before a negative phase has run. A
        Boltzmann prior's are estimated from the last negative phase's N samples by the
        Krichevsky-Trofimov estimate P̂ = (count + ½) / (N + 1), never 0 or 1."""
        logits = self.sample_marginal_logits
        return None if torch.isnan(logits).any() else logits.clone()

    def quadratic(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, W) of E(z) = -aᵀz - ½ zᵀWz, W (n, n) symmetric with zero diagonal, differentiable in
        the parameters: the form the Gaussian-integral relaxation needs (patent [0251])."""
        raise NotImplementedError

    def blocks(self) -> list:
        """Index tensors of groups of mutually uncoupled units (the Gibbs blocks), covering all units."""
        raise NotImplementedError

    def numpy_model(self):
        """The current parameters as a qvae_core RBM / BoltzmannMachine, or a QBM when gamma > 0."""
        model = self._classical_numpy_model()
        return q.QBM(model, self.gamma) if self.gamma > 0 else model

    def _classical_numpy_model(self):
        raise NotImplementedError

    def log_partition(self, *, population: int = LOG_Z_POPULATION, seed: int = 0, client=None) -> tuple[float, float]:
        """(log Z, its standard error) by one population-annealing run (the spread of its
        sub-population estimates); the quantum log Tr e^{-H} for a QBM. With a dask.distributed
        `client` the population is split over LOG_Z_RUNS independent runs on its workers
        (qvae_core.distributed.log_z: the same numbers for any number of workers)."""
        if client is not None:
            runs = max(1, min(LOG_Z_RUNS, population // MIN_POPULATION))
            return distributed.log_z(self.numpy_model(), runs=runs, population=population // runs, seed=seed,
                                     client=client)
        result = q.anneal(self.numpy_model(), population=population, seed=seed)
        return result.log_z, result.log_z_std

    def sample(self, num_samples: int, *, seed: int = 0) -> np.ndarray:
        """(num_samples, n) uint8 prior samples drawn from the final population of a
        population-annealing run of at least _SAMPLE_POPULATION replicas."""
        population = max(num_samples, _SAMPLE_POPULATION)
        samples = q.anneal(self.numpy_model(), population=population, seed=seed).samples
        return samples[np.random.default_rng(seed).choice(population, num_samples, replace=False)]


def _unrecorded_marginals(prior, state_dict, prefix, *_):
    """A checkpoint written before sample_marginal_logits existed loads as "no negative phase yet"."""
    state_dict.setdefault(prefix + "sample_marginal_logits", torch.full((prior.num_units,), float("nan")))


class BernoulliPrior(Prior):
    """Factorial prior p(z_l = 1) = σ(b_l): E(z) = -b·z, log Z = Σ softplus(b_l) (paper 000 App. B)."""

    needs_sampler = False

    def __init__(self, num_units: int):
        super().__init__(num_units)
        self.bias = nn.Parameter(torch.zeros(num_units))

    def energy(self, z):
        return -(z @ self.bias)

    def expected_energy(self, q, post, group):
        return -(q @ self.bias)

    def log_partition_surrogate(self, model_samples=None):
        return F.softplus(self.bias).sum()

    def marginal_logits(self):
        return self.bias.detach().clone()

    def quadratic(self):
        return self.bias, self.bias.new_zeros(self.num_units, self.num_units)

    def blocks(self):
        return [torch.arange(self.num_units, device=self.bias.device)]

    def _classical_numpy_model(self):
        b = self.bias.detach().double().cpu().numpy()
        return q.BoltzmannMachine(b, np.zeros((0, 2), np.int64), np.zeros(0))

    def log_partition(self, **_):
        return float(self.log_partition_surrogate().detach()), 0.0

    def sample(self, num_samples, *, seed=0):
        p = torch.sigmoid(self.bias.detach()).double().cpu().numpy()
        return (np.random.default_rng(seed).random((num_samples, self.num_units)) < p).astype(np.uint8)


class RBMPrior(Prior):
    """RBM over [v, h]: E(v, h) = -a·v - b·h - vᵀWh, W (nv, nh) (paper 000 Eq. 29, our sign)."""

    def __init__(self, num_visible: int, num_hidden: int, gamma: float = 0.0):
        super().__init__(num_visible + num_hidden, gamma)
        self.num_visible = num_visible
        self.weights = nn.Parameter(_INIT_WEIGHT_SCALE * torch.randn(num_visible, num_hidden))
        self.visible_bias = nn.Parameter(torch.zeros(num_visible))
        self.hidden_bias = nn.Parameter(torch.zeros(num_hidden))

    def energy(self, z):
        v, h = z[:, : self.num_visible], z[:, self.num_visible :]
        return -(v @ self.visible_bias + h @ self.hidden_bias + ((v @ self.weights) * h).sum(1))

    def expected_energy(self, q, post, group):
        nv = self.num_visible
        qv, qh, pv, ph = q[:, :nv], q[:, nv:], post[:, :nv], post[:, nv:]
        gv, gh = group[:nv, None], group[None, nv:]  # (nv, 1), (1, nh)
        w = self.weights
        pairs = (
            ((pv @ (w * (gv < gh))) * qh).sum(1)  # visible unit's group first
            + ((qv @ (w * (gv > gh))) * ph).sum(1)  # hidden unit's group first
            + ((qv @ (w * (gv == gh))) * qh).sum(1)  # same group
        )
        return -(qv @ self.visible_bias + qh @ self.hidden_bias + pairs)

    def quadratic(self):
        nv, w = self.num_visible, self.weights
        full = w.new_zeros(self.num_units, self.num_units)
        full = full.index_put((torch.arange(nv)[:, None], torch.arange(nv, self.num_units)[None, :]), w)
        return torch.cat([self.visible_bias, self.hidden_bias]), full + full.T

    def blocks(self):
        units = torch.arange(self.num_units, device=self.weights.device)
        return [units[: self.num_visible], units[self.num_visible :]]

    def _classical_numpy_model(self):
        return q.RBM(*(p.detach().double().cpu().numpy() for p in (self.weights, self.visible_bias, self.hidden_bias)))


class GraphPrior(Prior):
    """Boltzmann machine on a sparse graph (a Chimera/Pegasus/Zephyr working graph):
    E(z) = -Σ_i b_i z_i - Σ_k w_k z_{i_k} z_{j_k}; `edges` (m, 2) and `colors` (its Gibbs blocks,
    DSatur's if None) as in qvae_core.BoltzmannMachine."""

    def __init__(self, num_units: int, edges, gamma: float = 0.0, *, name: str = "graph", colors=None):
        super().__init__(num_units, gamma)
        model = q.BoltzmannMachine(np.zeros(num_units), edges, np.zeros(len(edges)), colors=colors)  # validates
        self.name = name
        self.colors = model.colors
        self.register_buffer("edges", torch.from_numpy(np.array(model.edges)))
        self.bias = nn.Parameter(torch.zeros(num_units))
        self.weights = nn.Parameter(_INIT_WEIGHT_SCALE * torch.randn(len(model.edges)))

    def extra_repr(self) -> str:
        return f"{self.name}, num_edges={len(self.edges)}, " + super().extra_repr()

    def energy(self, z):
        i, j = self.edges[:, 0], self.edges[:, 1]
        return -(z @ self.bias + (z[:, i] * z[:, j]) @ self.weights)

    def expected_energy(self, q, post, group):
        i, j = self.edges[:, 0], self.edges[:, 1]
        left = torch.where(group[i] < group[j], post[:, i], q[:, i])  # (B, m)
        right = torch.where(group[j] < group[i], post[:, j], q[:, j])
        return -(q @ self.bias + (left * right) @ self.weights)

    def quadratic(self):
        i, j = self.edges[:, 0], self.edges[:, 1]
        full = self.weights.new_zeros(self.num_units, self.num_units).index_put((i, j), self.weights, accumulate=True)
        return self.bias, full + full.T

    def blocks(self):
        colors = torch.tensor(np.array(self.colors), device=self.bias.device)
        return [torch.nonzero(colors == c).flatten() for c in torch.unique(colors)]

    def _classical_numpy_model(self):
        return q.BoltzmannMachine(
            self.bias.detach().double().cpu().numpy(),
            self.edges.cpu().numpy(),
            self.weights.detach().double().cpu().numpy(),
            colors=self.colors,
        )


@dataclass(frozen=True)
class PriorKind:
    """How to build one kind of prior from the integers of its `latent` spec (e.g. "32x32")."""

    spec: str  # the format, for messages
    separator: str
    counts: tuple  # how many integers the spec may have
    build: Callable  # (sizes, gamma) -> Prior
    quantum: bool = True  # whether a transverse field is allowed
    from_file: bool = False  # `latent` names a topology file (qvae_core.graphs.save) instead

    def sizes(self, latent: str) -> list:
        """The integers of `latent` (or its file name); ValueError naming `latent` if it does not fit."""
        if self.from_file:
            try:
                return [q.graphs.load(latent)]
            except ValueError as exc:
                raise ValueError(f"latent: {exc}") from None
        try:
            sizes = [int(v) for v in str(latent).split(self.separator)]
        except ValueError:
            sizes = []
        if len(sizes) not in self.counts or min(sizes, default=0) < 1:
            raise ValueError(f"latent: expected {self.spec} (positive integers), got {latent!r}")
        return sizes


def _graph_prior(topology_fn):
    """Builder of a GraphPrior on the topology topology_fn(*sizes) (qvae_core.graphs)."""

    def build(sizes, gamma):
        topology = topology_fn(*sizes)
        return GraphPrior(topology.num_units, topology.edges, gamma, name=topology.name, colors=topology.colors)

    return build


PRIORS = {
    "bernoulli": PriorKind("N", ",", (1,), lambda sizes, gamma: BernoulliPrior(sizes[0]), quantum=False),
    "rbm": PriorKind("NVxNH", "x", (2,), lambda sizes, gamma: RBMPrior(sizes[0], sizes[1], gamma)),
    "chimera": PriorKind("M[,N[,T]]", ",", (1, 2, 3), _graph_prior(q.graphs.chimera)),
    "pegasus": PriorKind("M", ",", (1,), _graph_prior(q.graphs.pegasus)),
    "zephyr": PriorKind("M[,T]", ",", (1, 2), _graph_prior(q.graphs.zephyr)),
    # Any graph saved by qvae_core.graphs.save, e.g. a QPU's working graph without its inactive
    # qubits (`qvae-core working-graph`), so that a --sampler qpu run matches the chip.
    "graph": PriorKind("FILE.npz", "", (1,), _graph_prior(lambda topology: topology), from_file=True),
}
