"""Negative-phase samplers: model samples from the C++ cores for the gradient of log Z.

Every sampler has the same small contract, which a QPU sampler implements as well:

    sampler.sample(model) -> (N, n) uint8     model: the prior's current qvae_core RBM,
                                               BoltzmannMachine or QBM (Prior.numpy_model())
    sampler.state_dict() / load_state_dict(state)   tensors and ints only, for checkpoints

Variants are built from a TrainConfig by name in SAMPLERS: "pcd" (persistent chains: block Gibbs, or CT-QMC
worldlines for a QBM), "pa" (a population-annealing run per gradient, classical or quantum) and
"qpu" (qvae_core.dwave.QPUSampler: a D-Wave solver through dwave-cloud-client, paper 001).
"""

from __future__ import annotations

import numpy as np
import torch

import qvae_core as q

from ..seeds import SamplerStream, derived_seed

__all__ = ["PersistentChains", "PopulationAnnealing", "qpu_sampler", "SAMPLERS"]


class PersistentChains:
    """Persistent contrastive divergence: `num_samples` chains advanced `sweeps` sweeps per call under
    the current parameters. Classical models use block Gibbs (GibbsSampler; by default 200 sweeps, paper
    000's 1000 chains x 200 block-Gibbs updates), QBMs continuous-time worldlines (PathIntegralSampler,
    tau = 0 slices; by default 20 sweeps: a CT-QMC sweep costs ~20 Gibbs sweeps, the slowest unit of a
    trained 16x16 QBM decorrelates in ~3, and 20 train the 16x16 QVAE as far as 200 do, docs/results.md).

    state_dict holds the chains' full checkpoint (states, random streams, worldlines), so a run
    resumed from it continues exactly as if it had never stopped.
    """

    default_sweeps = {q.GibbsSampler: 200, q.PathIntegralSampler: 20}  # by the kind of chains

    def __init__(self, num_samples: int = 1000, sweeps: int | None = None, *, seed: int = 0):
        self.num_samples = num_samples
        self.sweeps = sweeps  # None: default_sweeps of the chains' kind
        self.seed = seed
        self.num_threads = None  # core threads (None: all cores; distributed.py shares them between ranks)
        self._chains = None
        self._checkpoint = None  # loaded but not yet restored: the chains need the model first

    def sample(self, model) -> np.ndarray:
        if self._chains is None:
            kind = q.PathIntegralSampler if isinstance(model, q.QBM) else q.GibbsSampler
            self._chains = kind(model, self.num_samples, seed=derived_seed(self.seed, SamplerStream.CHAINS),
                                num_threads=self.num_threads)
            if self._checkpoint is not None:
                self._chains.restore(self._checkpoint)
                self._checkpoint = None
        else:
            self._chains.set_model(model)
        return self._chains.run(self.default_sweeps[type(self._chains)] if self.sweeps is None else self.sweeps)

    def state_dict(self) -> dict:
        checkpoint = self._checkpoint if self._chains is None else self._chains.checkpoint()
        if checkpoint is None:
            return {"chains": None}
        # torch has no uint32 to save: the streams travel as their int32 bit pattern
        return {"chains": {key: torch.from_numpy(value.view(np.int32) if key == "streams" else value)
                           for key, value in checkpoint.items()}}

    def load_state_dict(self, state: dict) -> None:
        chains = state["chains"]
        self._checkpoint = None if chains is None else {
            key: value.numpy().view(np.uint32) if key == "streams" else value.numpy() for key, value in chains.items()
        }
        self._chains = None


class PopulationAnnealing:
    """A fresh population-annealing run per call, from the exact start to the current model: the
    final population of `num_samples` replicas with `sweeps` sweeps per temperature step (paper
    000's QVAE: 1000 and 5). Works for RBMs, graph BMs and QBMs; no state carries over."""

    default_sweeps = 5

    def __init__(self, num_samples: int = 1000, sweeps: int | None = None, *, seed: int = 0):
        self.num_samples = num_samples
        self.sweeps = self.default_sweeps if sweeps is None else sweeps
        self.seed = seed
        self.num_threads = None  # as PersistentChains'
        self._calls = 0

    def sample(self, model) -> np.ndarray:
        seed = derived_seed(self.seed, self._calls)  # call k: stream k (seeds.SamplerStream)
        self._calls += 1
        return q.anneal(model, population=self.num_samples, seed=seed, sweeps_per_step=self.sweeps,
                        num_threads=self.num_threads).samples

    def state_dict(self) -> dict:
        return {"calls": self._calls}

    def load_state_dict(self, state: dict) -> None:
        self._calls = int(state["calls"])


def qpu_sampler(config, seed: int):
    """The QPU negative phase of a TrainConfig: solver by name or JSON feature filters (else the
    configured one), beta_eff tracked by pseudo-likelihood or the App. C update, and the default
    or the paper's pause-and-quench anneal (paper 001 App. B-C). Needs the `dwave` extra."""
    import json

    from ..dwave import AppendixC, PauseAndQuench, PseudoLikelihood, QPUSampler

    solver = json.loads(config.qpu_solver) if config.qpu_solver.startswith("{") else (config.qpu_solver or None)
    tracking = {
        "none": lambda: None,
        "pseudolikelihood": PseudoLikelihood,
        "appendix-c": lambda: AppendixC(config.beta_lr, seed=derived_seed(seed, SamplerStream.BETA_UPDATE)),
    }[config.beta_tracking]()
    schedule = PauseAndQuench() if config.qpu_schedule == "pause-and-quench" else None
    qpu = QPUSampler(solver, num_samples=config.negative_samples, beta_eff=config.beta_eff,
                     beta_update=tracking, anneal_schedule=schedule, seed=derived_seed(seed, SamplerStream.QPU))
    return qpu if config.prior != "rbm" else _embedded_rbm(config, qpu, seed)


def _embedded_rbm(config, qpu, seed: int):
    """An RBM prior on a QPU: its graph K_{nv,nh} minor-embedded in the solver's working graph
    (minorminer, seeded), the QPU restricted to the chain qubits, samples unembedded by majority
    vote (qvae_core.embedding)."""
    from ..embedding import EmbeddedSampler, find_embedding
    from .priors import PRIORS

    nv, nh = PRIORS["rbm"].sizes(config.latent)
    try:
        embedding = find_embedding(q.RBM(np.zeros((nv, nh)), np.zeros(nv), np.zeros(nh)), qpu.topology,
                                   seed=derived_seed(seed, SamplerStream.EMBEDDING), family=qpu.solver.properties.get("topology"))
        qpu.topology = embedding.physical_topology
    except BaseException:
        qpu.close()
        raise
    return EmbeddedSampler(embedding, qpu, chain_strength=config.chain_strength, seed=derived_seed(seed, SamplerStream.UNEMBEDDING))


def _from_counts(sampler_class):
    """(TrainConfig, seed) -> sampler_class(negative_samples, sweeps, seed=seed), sweeps 0 = its default
    (Gibbs chains or CT-QMC worldlines, as the prior needs)."""
    return lambda config, seed: sampler_class(config.negative_samples, config.sweeps or None, seed=seed)


# name -> (TrainConfig, seed) -> sampler
SAMPLERS = {
    "pcd": _from_counts(PersistentChains),
    "pa": _from_counts(PopulationAnnealing),
    "qpu": qpu_sampler,
}
