"""Shared pieces of the minor-embedding benchmarks (pytest suite and report.py).

The logical model is paper 004's prior: a fully connected BM over 60 units (K_60, N(0, 0.1²) weights
and biases), embedded with chain strength 3 in Chimera C(16) (the D-Wave 2000Q's graph; the paper's
embedding had 1,644 qubits on a chip with inactive qubits) and Pegasus P(16) (Advantage's).

- Embedding time: find_embedding (busclique's clique, or minorminer's heuristic, plus the
  verification qvae_core does) and busclique's own call, best of a few.
- Emulation: block-Gibbs sweeps per second of the physical model, 1000 chains, qvae-core on all
  threads and on one, against dwave-samplers' SimulatedAnnealingSampler doing the same sweeps of
  the same physical model: 1000 reads, a constant β = 1 schedule (beta_schedule_type="custom") and
  heat-bath ("Gibbs") acceptance, so that both draw from the same chains' distribution (its sweeps
  visit the qubits one after another; it runs on one thread).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

import qvae_core as q
from qvae_core import embedding as E

try:
    import dimod
    from dwave.samplers import SimulatedAnnealingSampler
except ImportError:  # dwave-samplers is in the bench extra: its rows are then skipped
    SimulatedAnnealingSampler = None

NUM_UNITS = 60
NUM_CHAINS = 1000
CHAIN_STRENGTH = 3.0
TOPOLOGIES = {"chimera(16)": lambda: q.graphs.chimera(16), "pegasus(16)": lambda: q.graphs.pegasus(16)}
HEURISTIC_TIMEOUT = 120.0


def logical_model(seed: int = 0) -> q.BoltzmannMachine:
    rng = np.random.default_rng(seed)
    edges = E.complete_edges(NUM_UNITS)
    return q.BoltzmannMachine(rng.normal(0, 0.1, NUM_UNITS), edges, rng.normal(0, 0.1, len(edges)))


def find(topology_name: str, method: str = "clique", seed: int = 0) -> E.Embedding:
    return E.find_embedding(logical_model(), TOPOLOGIES[topology_name](), seed=seed, method=method,
                            timeout=HEURISTIC_TIMEOUT)


def busclique_call(topology_name: str, seed: int = 0):
    """busclique.find_clique_embedding(60, g) alone, on the dwave-networkx graph of the topology."""
    import dwave_networkx as dnx
    from minorminer import busclique

    graph = {"chimera(16)": lambda: dnx.chimera_graph(16), "pegasus(16)": lambda: dnx.pegasus_graph(16)}[topology_name]()
    return lambda: busclique.find_clique_embedding(NUM_UNITS, graph, seed=seed, use_cache=False)


def best_seconds(call, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


class DwaveAnnealing:
    """run(k): k sweeps of SimulatedAnnealingSampler at constant β = 1 with heat-bath acceptance."""

    def __init__(self, model: q.BoltzmannMachine, num_reads: int, seed: int = 1):
        self.bqm = dimod.BinaryQuadraticModel.from_numpy_vectors(
            -model.bias, (model.edges[:, 0], model.edges[:, 1], -model.weights), 0.0, "BINARY")
        self.num_reads, self.seed = num_reads, seed
        self.sampler = SimulatedAnnealingSampler()

    def run(self, num_sweeps: int):
        return self.sampler.sample(self.bqm, num_reads=self.num_reads, beta_schedule_type="custom",
                                   beta_schedule=np.ones(num_sweeps), proposal_acceptance_criteria="Gibbs",
                                   seed=self.seed)


RUNNERS = {  # name -> physical model -> run(k) on NUM_CHAINS chains
    "qvae-core": lambda model: q.GibbsSampler(model, NUM_CHAINS, seed=0).run,
    "qvae-core-1thread": lambda model: q.GibbsSampler(model, NUM_CHAINS, seed=0, num_threads=1).run,
    "dwave-samplers": lambda model: DwaveAnnealing(model, NUM_CHAINS).run,
}


def runner_available(name: str) -> bool:
    return name != "dwave-samplers" or SimulatedAnnealingSampler is not None


def physical_model(embedding: E.Embedding) -> q.BoltzmannMachine:
    return E.embed(logical_model(), embedding, CHAIN_STRENGTH).physical


@dataclass
class Results:
    """embeddings[(topology, method)] = (embedding, seconds with verification, busclique seconds or None);
    rates[(runner, case)] = sweeps/s; qubits[case] = qubits of that physical model."""

    embeddings: dict = field(default_factory=dict)
    rates: dict = field(default_factory=dict)
    qubits: dict = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return bool(self.embeddings or self.rates)

    def markdown(self) -> str:
        lines = [f"K_{NUM_UNITS} (paper 004's prior); qvae-core on {q.max_threads()} threads", "",
                 "| topology | method | qubits | chain lengths | time to find (s) | busclique alone (s) |",
                 "|---|---|---:|---|---:|---:|"]
        for (topology, method), (emb, seconds, alone) in self.embeddings.items():
            lengths = emb.chain_lengths
            lines.append(f"| {topology} | {method} | {emb.num_qubits} | {lengths.min()}-{lengths.max()} | "
                         f"{seconds:.3f} | {'–' if alone is None else f'{alone:.3f}'} |")
        lines += ["", f"Emulation: block-Gibbs sweeps/s of the embedded K_{NUM_UNITS} (chain strength "
                  f"{CHAIN_STRENGTH:g}), {NUM_CHAINS} chains; dwave-samplers' SimulatedAnnealingSampler (1 thread, "
                  f"constant beta = 1, Gibbs acceptance) on the same physical model and reads", "",
                  "| physical model | qubits | qvae-core sweeps/s | 1 thread | dwave-samplers sweeps/s | x dwave | "
                  "x dwave, 1 thread each |", "|---|---:|---:|---:|---:|---:|---:|"]
        for case, qubits in self.qubits.items():
            r = {name: self.rates.get((name, case)) for name in RUNNERS}
            lines.append(f"| {case} | {qubits} | {_fmt(r['qvae-core'])} | {_fmt(r['qvae-core-1thread'])} | "
                         f"{_fmt(r['dwave-samplers'])} | {_ratio(r['qvae-core'], r['dwave-samplers'])} | "
                         f"{_ratio(r['qvae-core-1thread'], r['dwave-samplers'])} |")
        return "\n".join(lines)


def _fmt(rate) -> str:
    return "–" if rate is None else f"{rate:,.0f}" if rate >= 100 else f"{rate:.1f}"


def _ratio(a, b) -> str:
    return "–" if a is None or b is None else f"{a / b:.1f}"
