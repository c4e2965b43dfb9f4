"""Priors over the deepest layer u^L of the QAHM (paper 004 Sec. III–IV), in the paper's ±1 units.

    DensePrior    a fully connected Boltzmann machine P(u) = e^{−H(u)}/Z, H(u) = Σ h_i u_i +
                  Σ_{i<j} J_ij u_i u_j (Eq. 1 with Γ = 0 and β absorbed; gradients Eq. 8–9), sampled
                  as it is (PCD or population annealing) or, given an embedding, through its
                  embedded physical model (classical emulation or a QPU; Eq. 20–21)
    GrayBoxPrior  the physical model itself: per-qubit h^(k)_i and per-coupler J^(kl)_ij inside and
                  between chains are the trained parameters (Eq. 19, in the package's Ising sign
                  H(s) = Σ h s + Σ J s s, where Eq. 19 writes −½ΣJ ZZ − Σ h Z); data states enter
                  through the replica map f (Eq. 20), samples leave through the majority vote g (Eq. 21)

Both share one contract with the trainer: `energy(u)` of logical ±1 states (the positive phase),
`sample_energy(z)` of the states the sampler returns, `to_logical(z)` (±1), `numpy_model()` (the
{0,1} BoltzmannMachine handed to the sampler) and, for evaluation, `sampling_model()` /
`sampling_states(z)`: the classical model whose samples are drawn and the state of it that a logical
state maps to, so that log P(u) >= −E(f(u)) − log Z (equal for DensePrior without an embedding).
The ±1 ↔ {0,1} conversion happens only in numpy_model (s = 2z − 1, E(z) = H(s) − constant).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import qvae_core as q

from .. import embedding as emb
from ..models import binary_from_ising

__all__ = ["DensePrior", "GrayBoxPrior", "PRIOR_KINDS"]

_SAMPLE_POPULATION = 1000  # smallest population of the annealing runs that draw prior samples


def _ising_energy(s: torch.Tensor, h: torch.Tensor, edges: torch.Tensor, J: torch.Tensor) -> torch.Tensor:
    """H(s) = Σ h s + Σ_k J_k s_{i_k} s_{j_k} per row."""
    return s @ h + (s[:, edges[:, 0]] * s[:, edges[:, 1]]) @ J


def _boltzmann_machine(h: torch.Tensor, edges: np.ndarray, J: torch.Tensor, colors=None) -> q.BoltzmannMachine:
    """The {0,1} model of an Ising form: E(z) = H(2z − 1) − constant (the constant cancels in p)."""
    bias, weights, _ = binary_from_ising(h.detach().double().numpy().copy(), edges, J.detach().double().numpy(), 0.0)
    return q.BoltzmannMachine(bias, edges, weights, colors=colors)


class _Prior(nn.Module):
    embedding = None

    def sample_energy(self, z: torch.Tensor) -> torch.Tensor:
        """H of sampled {0,1} states of numpy_model()'s units (the negative phase)."""
        return self._state_energy(2 * z - 1)

    def anneal(self, *, population: int = 1000, seed: int = 0) -> q.AnnealResult:
        """One population-annealing run of sampling_model(): log Z with its standard error, and a final
        population of samples (sample() maps them to logical states)."""
        return q.anneal(self.sampling_model(), population=population, seed=seed)

    def log_prob_bound(self, u: torch.Tensor, log_z: float) -> torch.Tensor:
        """−E(f(u)) − log Z of sampling_model(): log P(u) exactly for a DensePrior sampled as it is, a
        lower bound on the majority-voted marginal otherwise (f(u) is one of the states voting u)."""
        z = ((u.detach().numpy() + 1) / 2).astype(np.uint8)
        return torch.from_numpy(-self.sampling_model().energy(self.sampling_states(z)) - log_z).to(u.dtype)

    def sample(self, num_samples: int, *, seed: int = 0, annealed: q.AnnealResult | None = None) -> torch.Tensor:
        """(num_samples, n) ±1 logical states drawn without replacement from the final population of
        `annealed` (a run of anneal()) or, if it has fewer, of a new run of at least 1000 replicas,
        mapped back by to_logical (majority vote for embedded and gray-box priors, ties seeded)."""
        if annealed is None or annealed.samples.shape[0] < num_samples:
            annealed = self.anneal(population=max(num_samples, _SAMPLE_POPULATION), seed=seed)
        population = annealed.samples.shape[0]
        states = annealed.samples[np.random.default_rng(seed).choice(population, num_samples, replace=False)]
        return self._from_sampling_states(states, seed)


class DensePrior(_Prior):
    """Fully connected BM over `num_units` ±1 units (module docstring); with `embedding` (an
    qvae_core.embedding.Embedding of K_n) and `chain_strength` it is sampled through its physical model."""

    kind = "dense"

    def __init__(self, num_units: int, embedding: emb.Embedding | None = None, chain_strength: float | None = None,
                 chain_break_method: str = "majority_vote"):
        super().__init__()
        self.num_units = int(num_units)
        edges = emb.complete_edges(self.num_units)
        if embedding is not None:
            if embedding.num_units != self.num_units or embedding.edges.shape[0] != edges.shape[0]:
                raise ValueError(f"embedding: embeds {embedding.num_units} units and {embedding.edges.shape[0]} edges, "
                                 f"not the complete graph K_{self.num_units}")
            emb.embed(q.BoltzmannMachine(np.zeros(self.num_units), edges, np.zeros(len(edges))), embedding,
                      chain_strength)  # checks the chain strength
        self.embedding, self.chain_strength, self.chain_break_method = embedding, chain_strength, chain_break_method
        self._edges = edges
        self.register_buffer("edges", torch.from_numpy(edges))
        self.h = nn.Parameter(torch.zeros(self.num_units))
        self.J = nn.Parameter(torch.zeros(len(edges)))

    def extra_repr(self) -> str:
        return f"num_units={self.num_units}" + ("" if self.embedding is None else f", {self.embedding!r}")

    def energy(self, u: torch.Tensor) -> torch.Tensor:
        """H(u) = u·h + Σ_{i<j} J_ij u_i u_j through the upper-triangular coupling matrix."""
        upper = torch.zeros(self.num_units, self.num_units, dtype=self.J.dtype).index_put(
            (self.edges[:, 0], self.edges[:, 1]), self.J)
        return u @ self.h + ((u @ upper) * u).sum(-1)

    _state_energy = energy

    def to_logical(self, z: np.ndarray, seed: int = 0) -> torch.Tensor:
        """Sampled {0,1} logical states (unembedded already, if embedded) as ±1."""
        return torch.from_numpy(2.0 * z - 1.0).float()

    def numpy_model(self) -> q.BoltzmannMachine:
        return _boltzmann_machine(self.h, self._edges, self.J)

    def embedded(self) -> emb.EmbeddedModel:
        return emb.embed(self.numpy_model(), self.embedding, self.chain_strength)

    def sampling_model(self) -> q.BoltzmannMachine:
        return self.numpy_model() if self.embedding is None else self.embedded().physical

    def sampling_states(self, z: np.ndarray) -> np.ndarray:
        return z if self.embedding is None else self.embedding.replicate(z)

    def _from_sampling_states(self, states: np.ndarray, seed: int) -> torch.Tensor:
        if self.embedding is not None:
            states = emb.unembed(states, self.embedding, "majority_vote", seed=seed).samples
        return self.to_logical(states)


class GrayBoxPrior(_Prior):
    """The physical model of an embedding as the trained prior (module docstring). It starts as the
    embedding of a model with h = J = 0: every coupler inside a chain at −chain_strength, all else 0."""

    kind = "gray-box"

    def __init__(self, embedding: emb.Embedding, chain_strength: float, chain_break_method: str = "majority_vote"):
        super().__init__()
        if not isinstance(embedding, emb.Embedding):
            raise ValueError(f"embedding: expected an Embedding, got {type(embedding).__name__}")
        if chain_break_method not in emb.CHAIN_BREAK_METHODS:
            raise ValueError(f"chain_break_method: expected one of {list(emb.CHAIN_BREAK_METHODS)}, got "
                             f"{chain_break_method!r}")
        n = embedding.num_units
        start = emb.embed(q.BoltzmannMachine(np.zeros(n), embedding.edges, np.zeros(len(embedding.edges))), embedding,
                          chain_strength)
        h, edges, J, _ = start.physical.to_ising()
        self.num_units = n
        self.embedding, self.chain_strength, self.chain_break_method = embedding, chain_strength, chain_break_method
        self._edges = edges
        self.register_buffer("edges", torch.from_numpy(edges))
        self.register_buffer("owner", torch.from_numpy(embedding.owner))
        self.h = nn.Parameter(torch.from_numpy(h).float())
        self.J = nn.Parameter(torch.from_numpy(J).float())
        self.last_unembedding = None

    def extra_repr(self) -> str:
        return f"{self.embedding!r}"

    def energy(self, u: torch.Tensor) -> torch.Tensor:
        """H̃ of the replicated states f(u) (Eq. 19–20)."""
        return self._state_energy(u[:, self.owner])

    def _state_energy(self, s: torch.Tensor) -> torch.Tensor:
        return _ising_energy(s, self.h, self.edges, self.J)

    def to_logical(self, z: np.ndarray, seed: int = 0) -> torch.Tensor:
        """Majority vote (or the configured method) of physical {0,1} samples, as ±1 (Eq. 21)."""
        self.last_unembedding = emb.unembed(z, self.embedding, self.chain_break_method, seed=seed)
        return torch.from_numpy(2.0 * self.last_unembedding.samples - 1.0).float()

    def numpy_model(self) -> q.BoltzmannMachine:
        return _boltzmann_machine(self.h, self._edges, self.J, colors=self.embedding.physical_topology.colors)

    sampling_model = numpy_model

    def sampling_states(self, z: np.ndarray) -> np.ndarray:
        return self.embedding.replicate(z)

    def _from_sampling_states(self, states: np.ndarray, seed: int) -> torch.Tensor:
        return self.to_logical(states, seed)


PRIOR_KINDS = ("dense", "embedded", "gray-box")
