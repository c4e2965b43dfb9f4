"""Minor embedding of logical Boltzmann machines into a working graph (paper 004 Sec. IV, Eq. 19–21;
docs/conventions.md, "Embedding energies"). Extra `dwave`: minorminer and dwave-system.

A logical unit i becomes a chain C_i of qubits, connected by couplers; chains are disjoint and each
logical edge (i, j) has at least one coupler between C_i and C_j. `find_embedding` finds chains
(minorminer's busclique for complete graphs on Chimera/Pegasus/Zephyr, minorminer.find_embedding
otherwise); an `Embedding` is verified whenever it is made or loaded.

`embed` builds the physical model in spin form (H(s) = Σ h s + Σ J s s): h_i spread evenly over C_i,
J_ij over the couplers between C_i and C_j, −c on every coupler inside a chain (c > 0, the chain
strength), as dwave-system's embed_bqm does; its binary form is a BoltzmannMachine on the qubits,
and `offset` makes E_logical(u) = E_physical(f(u)) + offset exactly for intact chains (f: Eq. 20).

`unembed` maps physical samples back (Eq. 21): majority vote (ties broken by a seeded generator),
discard (dwave-system's, keeps the samples whose chains are all intact) or weighted random (one
qubit of the chain drawn per sample and chain, seeded); the chain-break report uses dwave-system's
broken_chains. `EmbeddedSampler` samples a logical model through any physical sampler with
`sample(model)`: classical emulation (qvae_core.dvae's PersistentChains / PopulationAnnealing on
the physical model) or a QPU (qvae_core.dwave.QPUSampler on `physical_topology`).
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._validation import binary_states, edge_array, integer_array, npz_archive, positive_float, positive_int, seed_value
from .graphs import Topology, checked_parts, load_dwave_networkx
from .models import RBM, BoltzmannMachine, binary_from_ising
from .seeds import derived_seed

__all__ = [
    "Embedding",
    "find_embedding",
    "complete_edges",
    "EmbeddedModel",
    "embed",
    "uniform_torque_compensation",
    "Unembedding",
    "unembed",
    "CHAIN_BREAK_METHODS",
    "EmbeddedSampler",
]

_FORMAT_VERSION = 1
_FAMILY_NAME = re.compile(r"^(chimera|pegasus|zephyr)\(([0-9, ]+)\)$")  # names given by qvae_core.graphs


def complete_edges(num_units: int) -> np.ndarray:
    """The edges (i, j), i < j, of the complete graph K_n, row by row."""
    i, j = np.triu_indices(positive_int(num_units, "num_units"), k=1)
    return np.stack([i, j], axis=1).astype(np.int64)


def _logical_graph(model) -> tuple[int, np.ndarray]:
    """(number of units, edges) of an RBM or a BoltzmannMachine."""
    if not isinstance(model, (RBM, BoltzmannMachine)):
        raise ValueError(f"model: expected an RBM or a BoltzmannMachine, got {type(model).__name__}")
    return model.num_units, np.asarray(model.edges)


def _edge_keys(edges: np.ndarray, n: int) -> np.ndarray:
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    return edges.min(axis=1) * n + edges.max(axis=1)


class Embedding:
    """Chains of qubits for the units of a logical graph, in a `Topology` (verified when made).

    chains: one sequence of qubit labels (topology.nodes values) per logical unit; edges: the
    logical graph's (m, 2) edges, each of which needs a coupler between its two chains.
    physical_topology is the subgraph the embedded models live on: the chain qubits (sorted labels,
    the unit order of every physical model and sample) and the couplers inside chains and between
    the chains of logical edges, with the topology's colouring.
    """

    def __init__(self, topology: Topology, chains, edges):
        if not isinstance(topology, Topology):
            raise ValueError(f"topology: expected a qvae_core.graphs.Topology, got {type(topology).__name__}")
        if isinstance(chains, (str, bytes)) or not hasattr(chains, "__len__") or len(chains) == 0:
            raise ValueError("chains: expected a non-empty sequence of chains (sequences of qubit labels)")
        self.topology = topology
        self.chains = tuple(_chain(chain, k) for k, chain in enumerate(chains))
        self.edges = edge_array(edges, "edges", len(self.chains))
        _verify(self.topology, self.chains, self.edges)
        self._build_physical()

    # ---- structure -----------------------------------------------------------------------------

    @property
    def num_units(self) -> int:
        """Logical units (chains)."""
        return len(self.chains)

    @property
    def num_qubits(self) -> int:
        """Qubits in all chains (units of the physical model)."""
        return self.physical_topology.num_units

    @property
    def chain_lengths(self) -> np.ndarray:
        return np.array([c.size for c in self.chains], dtype=np.int64)

    def _build_physical(self) -> None:
        topo = self.topology
        labels = np.concatenate(self.chains)
        owner_of_label = np.repeat(np.arange(self.num_units), self.chain_lengths)
        order = np.argsort(labels)
        nodes = labels[order]
        owner = owner_of_label[order]  # logical unit of each physical unit
        # topology positions -> physical positions (-1: not in a chain)
        where = np.full(topo.num_units, -1, dtype=np.int64)
        where[np.searchsorted(topo.nodes, nodes)] = np.arange(nodes.size)
        ends = where[topo.edges]
        ends = ends[(ends >= 0).all(axis=1)]
        a, b = owner[ends[:, 0]], owner[ends[:, 1]]
        realises, index = _lookup(_edge_keys(self.edges, self.num_units),
                                  _edge_keys(np.stack([a, b], axis=1), self.num_units))
        realises &= a != b
        keep = (a == b) | realises
        ends, realises, index = np.sort(ends[keep], axis=1), realises[keep], index[keep]
        rank = np.lexsort((ends[:, 1], ends[:, 0]))
        ends, realises, index = ends[rank], realises[rank], index[rank]
        self._owner = owner
        self._intra = ~realises  # physical edges inside a chain
        self._logical_edge = np.where(realises, index, -1)  # the logical edge each coupler realises
        self._couplers_per_edge = np.bincount(self._logical_edge[realises], minlength=self.edges.shape[0])
        self._chain_order = np.argsort(owner, kind="stable")  # physical positions grouped by chain
        self._chain_starts = np.concatenate([[0], np.cumsum(self.chain_lengths)[:-1]])
        colors = None if topo.colors is None else topo.colors[np.searchsorted(topo.nodes, nodes)]
        self.physical_topology = Topology(f"{topo.name} [{self.num_units} chains]", nodes, ends, colors)

    @property
    def owner(self) -> np.ndarray:
        """The logical unit of each physical unit, (num_qubits,)."""
        return self._owner.copy()

    @property
    def intra_chain(self) -> np.ndarray:
        """Whether each edge of physical_topology lies inside a chain, (num_physical_edges,) bool."""
        return self._intra.copy()

    def chain_positions(self, unit: int) -> np.ndarray:
        """Positions in physical_topology.nodes of the qubits of chain `unit`."""
        start = self._chain_starts[unit]
        return self._chain_order[start : start + self.chains[unit].size].copy()

    def replicate(self, states) -> np.ndarray:
        """Eq. 20: every qubit of chain i takes the logical value u_i; binary (N, n) -> (N, num_qubits)."""
        return binary_states(states, "states", self.num_units)[:, self._owner]

    def __repr__(self) -> str:
        lengths = self.chain_lengths
        return (f"Embedding({self.num_units} units, {self.edges.shape[0]} edges -> {self.num_qubits} qubits of "
                f"{self.topology.name!r}, chains of {lengths.min()}-{lengths.max()})")

    # ---- files ---------------------------------------------------------------------------------

    def save(self, path) -> Path:
        """Writes the embedding with its topology to an .npz file (numpy adds .npz to a name without
        it); returns the path written."""
        topo = self.topology
        arrays = {"version": np.array(_FORMAT_VERSION), "topology_name": np.array(topo.name),
                  "topology_nodes": topo.nodes, "topology_edges": topo.edges,
                  "chain_qubits": np.concatenate(self.chains), "chain_lengths": self.chain_lengths,
                  "edges": np.asarray(self.edges)}
        if topo.colors is not None:
            arrays["topology_colors"] = topo.colors
        path = Path(path)
        path = path if path.suffix == ".npz" else path.with_name(path.name + ".npz")
        np.savez(path, **arrays)
        return path

    @classmethod
    def load(cls, path, topology: Topology | None = None) -> "Embedding":
        """Reads and verifies an embedding written by `save`. With `topology`, the saved topology must
        be that one (same qubits and couplers), else ValueError naming both."""
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"path: expected a file name, got {type(path).__name__}")
        try:
            with open(path, "rb") as file:
                data = npz_archive(file)  # (member sizes checked before reading)
                if int(data["version"]) != _FORMAT_VERSION:
                    raise ValueError(f"format version {int(data['version'])}, expected {_FORMAT_VERSION}")
                name = str(data["topology_name"])
                parts = [np.asarray(data[k]) for k in ("topology_nodes", "topology_edges", "chain_qubits",
                                                       "chain_lengths", "edges")]
                colors = np.asarray(data["topology_colors"]) if "topology_colors" in data.files else None
        except (OSError, EOFError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path}: not an embedding file written by Embedding.save ({exc})") from None
        nodes, edges, qubits, lengths, logical = parts
        try:
            nodes, edges, colors = checked_parts(nodes, edges, colors)
            lengths = integer_array(lengths, "chain_lengths", np.int64, (None,))
            qubits = integer_array(qubits, "chain_qubits", np.int64, (None,))
            if lengths.size == 0 or lengths.min() < 1 or lengths.sum() != qubits.size:
                raise ValueError("chain_lengths: must be positive and sum to the number of chain qubits")
            saved = Topology(name, nodes, edges, colors)
            embedding = cls(saved, np.split(qubits, np.cumsum(lengths)[:-1]), logical)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        if topology is not None:
            embedding.check_topology(topology, f"{path}")
        return embedding

    def check_topology(self, topology: Topology, what: str = "embedding") -> None:
        """ValueError unless `topology` has the qubits and couplers of the embedding's own topology."""
        if not isinstance(topology, Topology):
            raise ValueError(f"topology: expected a qvae_core.graphs.Topology, got {type(topology).__name__}")
        mine = self.topology
        same = (np.array_equal(np.asarray(topology.nodes), mine.nodes)
                and np.array_equal(np.sort(_edge_keys(topology.edges, topology.num_units)),
                                   np.sort(_edge_keys(mine.edges, mine.num_units))))
        if not same:
            raise ValueError(f"topology: {what} belongs to topology {mine.name!r} ({mine.num_units} qubits, "
                             f"{mine.edges.shape[0]} couplers), not to {topology.name!r} ({topology.num_units} "
                             f"qubits, {np.asarray(topology.edges).shape[0]} couplers)")


def _lookup(keys: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(found, index): whether each of `wanted` is in `keys` and, where found, its index there."""
    if keys.size == 0:
        return np.zeros(wanted.shape, dtype=bool), np.zeros(wanted.shape, dtype=np.int64)
    sorter = np.argsort(keys)
    slot = np.searchsorted(keys, wanted, sorter=sorter).clip(0, keys.size - 1)
    index = sorter[slot]
    return keys[index] == wanted, index


def _chain(chain, k: int) -> np.ndarray:
    if isinstance(chain, (str, bytes)):
        raise ValueError(f"chains[{k}]: expected a sequence of qubit labels, got {chain!r}")
    labels = integer_array(np.asarray(chain).reshape(-1) if np.ndim(chain) == 0 else chain,
                           f"chains[{k}]", np.int64, (None,))
    if labels.size == 0:
        raise ValueError(f"chains[{k}]: a chain needs at least one qubit")
    if np.unique(labels).size != labels.size:
        raise ValueError(f"chains[{k}]: lists a qubit twice")
    labels.flags.writeable = False
    return labels


def _target_graph(topology: Topology, qubits: np.ndarray | None = None):
    """The topology as a networkx graph (labels), or only its subgraph on `qubits`."""
    import networkx as nx

    graph = nx.Graph()
    nodes, edges = topology.nodes, topology.edges
    if qubits is not None:
        inside = np.isin(nodes, qubits)
        nodes, edges = nodes[inside], edges[inside[edges].all(axis=1)]
    graph.add_nodes_from(nodes.tolist())
    graph.add_edges_from(topology.nodes[edges].tolist())
    return graph


def _source_graph(num_units: int, edges: np.ndarray):
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(range(num_units))
    graph.add_edges_from(np.asarray(edges).tolist())
    return graph


def _verify(topology: Topology, chains: tuple, edges: np.ndarray) -> None:
    """minorminer's diagnose_embedding (on the subgraph of the chain qubits, once they are known to be
    qubits of the topology); the first problem it finds as a ValueError naming it."""
    from minorminer.utils import ChainOverlapError, DisconnectedChainError, MissingChainError, MissingEdgeError
    from minorminer.utils.diagnostic import diagnose_embedding

    for unit, chain in enumerate(chains):
        missing = chain[~np.isin(chain, topology.nodes)]
        if missing.size:
            raise ValueError(f"chains[{unit}]: qubit {missing[0]} is not a qubit of topology {topology.name!r}")
    emb = {k: chain.tolist() for k, chain in enumerate(chains)}
    target = _target_graph(topology, np.concatenate(chains))  # the chain qubits are all it looks at
    for kind, *args in diagnose_embedding(emb, _source_graph(len(chains), edges), target):
        if kind is DisconnectedChainError:
            raise ValueError(f"chains[{args[0]}]: its qubits are not connected by couplers of topology "
                             f"{topology.name!r} (a broken chain)")
        if kind is ChainOverlapError:
            qubit, a, b = args
            raise ValueError(f"chains: qubit {qubit} is in chains {a} and {b} (chains must be disjoint)")
        if kind is MissingEdgeError:
            a, b = args
            raise ValueError(f"edges: logical edge ({a}, {b}) has no coupler between chains {a} and {b}")
        if kind is MissingChainError:  # pragma: no cover - _chain refuses empty chains first
            raise ValueError(f"chains[{args[0]}]: empty")
        raise ValueError(f"embedding: {kind.__name__}{tuple(args)}")  # pragma: no cover - a new minorminer error


# ---- finding embeddings --------------------------------------------------------------------------


def find_embedding(model, topology: Topology, *, seed=None, timeout: float = 60.0, family=None,
                   method: str = "auto") -> Embedding:
    """An embedding of the interaction graph of `model` (RBM or BoltzmannMachine) into `topology`.

    method "clique" (and "auto" for complete graphs on a D-Wave family graph): minorminer's busclique
    (polynomial time, chains of equal length; "auto" leaves the small cliques that crash busclique,
    K_k with k <= t on Chimera and k <= 2t on Zephyr, to the heuristic); "heuristic" (and "auto" otherwise):
    minorminer.find_embedding with random_seed = seed and `timeout` seconds. `family` names the
    topology's D-Wave family for busclique: a SAPI topology mapping {"type": "pegasus", "shape": [16]}
    (a solver's properties["topology"]) or None to read it from names such as "pegasus(16)" given by
    qvae_core.graphs. ValueError (naming model or topology) when the model has more units than the
    topology has qubits or no embedding is found.
    """
    num_units, edges = _logical_graph(model)
    if not isinstance(topology, Topology):
        raise ValueError(f"topology: expected a qvae_core.graphs.Topology, got {type(topology).__name__}")
    if method not in ("auto", "clique", "heuristic"):
        raise ValueError(f"method: expected 'auto', 'clique' or 'heuristic', got {method!r}")
    seed = seed_value(seed) % 2**31  # minorminer's and busclique's seeds are 32-bit
    timeout = positive_float(timeout, "timeout")
    if num_units > topology.num_units:
        raise ValueError(f"model: {num_units} units, more than the {topology.num_units} qubits of topology "
                         f"{topology.name!r} can hold")
    complete = edges.shape[0] == num_units * (num_units - 1) // 2
    shape = _family(topology, family)
    if method == "clique" and not complete:
        raise ValueError("method: 'clique' embeds complete graphs; this model's graph is not complete")
    if method == "clique" and shape is None:
        raise ValueError(f"family: topology {topology.name!r} is not a known D-Wave family graph; give family= "
                         "(e.g. a solver's properties['topology']) for a clique embedding")
    small = shape is not None and _busclique_aborts(shape, num_units)
    if method == "clique" and small:
        raise ValueError(f"method: busclique aborts the process for K_{num_units} on a {shape[0]} graph with tiles of "
                         f"{_tile(shape)} (minorminer 0.2.22); use method='auto' or 'heuristic'")
    if complete and shape is not None and method != "heuristic" and not small:
        chains = _clique_chains(num_units, topology, shape, seed)
        how = f"busclique found no clique embedding of K_{num_units}"
    else:
        chains = _heuristic_chains(num_units, edges, topology, seed, timeout)
        how = f"minorminer.find_embedding found no embedding in {timeout:g} s (seed {seed})"
    if chains is None:
        raise ValueError(f"topology: {how} in topology {topology.name!r} ({topology.num_units} qubits); try a "
                         "larger topology" + ("" if complete and shape else ", another seed or a longer timeout"))
    return Embedding(topology, chains, edges)


def _family(topology: Topology, family):
    """(family name, shape list) of the topology, or None when unknown."""
    if family is None:
        found = _FAMILY_NAME.match(topology.name)
        return None if found is None else (found.group(1), [int(v) for v in found.group(2).split(",")])
    if not isinstance(family, dict) or family.get("type") not in ("chimera", "pegasus", "zephyr"):
        raise ValueError(f"family: expected a mapping such as {{'type': 'pegasus', 'shape': [16]}}, got {family!r}")
    shape = family.get("shape")
    shape = list(shape) if isinstance(shape, (list, tuple)) else [shape]
    return family["type"], [positive_int(v, "family shape") for v in shape]


def _tile(shape) -> int:
    family, dims = shape
    return dims[2] if family == "chimera" and len(dims) > 2 else dims[1] if family == "zephyr" and len(dims) > 1 else 4


def _busclique_aborts(shape, k: int) -> bool:
    """Small cliques that make minorminer 0.2.22's busclique die with std::bad_alloc (the process
    aborts; found by trying every k up to 18): Chimera 3 <= k <= t, Zephyr t < k <= 2t. Such K_k
    go to the heuristic, which embeds them at once."""
    family, t = shape[0], _tile(shape)
    return (family == "chimera" and k <= t) or (family == "zephyr" and k <= 2 * t)


def _clique_chains(num_units: int, topology: Topology, shape, seed: int):
    from minorminer import busclique

    name, dims = shape
    dnx = load_dwave_networkx()
    build = {"chimera": dnx.chimera_graph, "pegasus": dnx.pegasus_graph, "zephyr": dnx.zephyr_graph}[name]
    try:
        graph = build(*dims, node_list=topology.nodes.tolist(), edge_list=topology.nodes[topology.edges].tolist(),
                      check_node_list=True, check_edge_list=True)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"topology: {topology.name!r} is not a subgraph of a {name} {dims} graph ({exc})") from None
    found = busclique.find_clique_embedding(num_units, graph, seed=seed, use_cache=False)  # no files in $HOME
    return [found[k] for k in range(num_units)] if len(found) == num_units else None


def _heuristic_chains(num_units: int, edges: np.ndarray, topology: Topology, seed: int, timeout: float):
    import minorminer

    found = minorminer.find_embedding(_source_graph(num_units, edges), _target_graph(topology),
                                      random_seed=seed, timeout=timeout)
    return [found[k] for k in range(num_units)] if len(found) == num_units else None


# ---- embedding a model ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddedModel:
    """A logical model and its physical BoltzmannMachine on embedding.physical_topology, with
    E_logical(u) = physical.energy(f(u)) + offset for every logical state u (all chains intact)."""

    logical: object
    embedding: Embedding
    physical: BoltzmannMachine
    offset: float
    chain_strength: float

    def unembed(self, samples, method: str = "majority_vote", *, seed=None) -> "Unembedding":
        return unembed(samples, self.embedding, method, seed=seed)


def uniform_torque_compensation(prefactor: float = 1.414):
    """A chain-strength rule: dwave-system's uniform_torque_compensation (prefactor × RMS(J) ×
    √(mean degree), in the Ising units of the logical model) as a callable (model, embedding) -> c."""
    prefactor = positive_float(prefactor, "prefactor")

    def rule(model, embedding):
        import dimod
        from dwave.embedding.chain_strength import uniform_torque_compensation as utc

        h, edges, J, offset = model.to_ising()
        bqm = dimod.BinaryQuadraticModel.from_ising(dict(enumerate(h.tolist())),
                                                    dict(zip(map(tuple, edges.tolist()), J.tolist())), offset)
        return utc(bqm, prefactor=prefactor)

    rule.prefactor = prefactor
    return rule


def embed(model, embedding: Embedding, chain_strength) -> EmbeddedModel:
    """The physical model of `model` on `embedding` (module docstring; docs/conventions.md "Embedding energies").

    chain_strength: c > 0 in Ising units (each coupler inside a chain gets J = −c), or a callable
    (model, embedding) -> c such as uniform_torque_compensation(). Every edge of the model must be
    an edge of the embedding's logical graph.
    """
    num_units, model_edges = _logical_graph(model)
    if not isinstance(embedding, Embedding):
        raise ValueError(f"embedding: expected an Embedding, got {type(embedding).__name__}")
    if num_units != embedding.num_units:
        raise ValueError(f"model: {num_units} units, the embedding has {embedding.num_units} chains")
    strength = chain_strength(model, embedding) if callable(chain_strength) else chain_strength
    strength = positive_float(strength, "chain_strength")
    h, _, J, logical_offset = model.to_ising()
    found, index = _lookup(_edge_keys(embedding.edges, num_units), _edge_keys(model_edges, num_units))
    if not found.all():
        bad = model_edges[np.argmin(found)]
        raise ValueError(f"model: edge ({bad[0]}, {bad[1]}) is not an edge of the embedding's logical graph")
    J_logical = np.zeros(embedding.edges.shape[0])
    J_logical[index] = J
    lengths = embedding.chain_lengths
    h_phys = h[embedding._owner] / lengths[embedding._owner]
    inter = ~embedding._intra
    J_phys = np.full(embedding._intra.size, -strength)
    edge = embedding._logical_edge[inter]
    J_phys[inter] = J_logical[edge] / embedding._couplers_per_edge[edge]
    phys_edges = embedding.physical_topology.edges
    bias, weights, constant = binary_from_ising(h_phys, phys_edges, J_phys, 0.0)
    physical = BoltzmannMachine(bias, phys_edges, weights, colors=embedding.physical_topology.colors)
    offset = constant + strength * int(embedding._intra.sum()) + logical_offset
    return EmbeddedModel(model, embedding, physical, float(offset), strength)


# ---- unembedding ---------------------------------------------------------------------------------

CHAIN_BREAK_METHODS = ("majority_vote", "discard", "weighted_random")


@dataclass(frozen=True)
class Unembedding:
    """Logical samples (N', n) uint8 from N physical samples; `rows` are the physical rows they come
    from (all of them except for "discard"); `broken` (N, n) marks the chains broken in each sample."""

    samples: np.ndarray
    rows: np.ndarray
    broken: np.ndarray
    method: str

    @property
    def sample_break_fraction(self) -> np.ndarray:
        """Fraction of broken chains in each physical sample, (N,)."""
        return self.broken.mean(axis=1)

    @property
    def chain_break_fraction(self) -> np.ndarray:
        """Fraction of the physical samples in which each chain is broken, (n,)."""
        return self.broken.mean(axis=0)

    @property
    def break_fraction(self) -> float:
        """Fraction of all chains of all samples that are broken."""
        return float(self.broken.mean()) if self.broken.size else 0.0


def unembed(samples, embedding: Embedding, method: str = "majority_vote", *, seed=None) -> Unembedding:
    """Logical samples from physical binary samples (N, embedding.num_qubits) in the unit order of
    embedding.physical_topology (Eq. 21): see the module docstring for the methods."""
    from dwave.embedding.chain_breaks import broken_chains, discard

    if not isinstance(embedding, Embedding):
        raise ValueError(f"embedding: expected an Embedding, got {type(embedding).__name__}")
    if method not in CHAIN_BREAK_METHODS:
        raise ValueError(f"method: expected one of {list(CHAIN_BREAK_METHODS)}, got {method!r}")
    z = binary_states(samples, "samples", embedding.num_qubits)
    rng = np.random.default_rng(seed_value(seed))
    chains = [embedding.chain_positions(k) for k in range(embedding.num_units)]
    num = z.shape[0]
    broken = broken_chains(z, chains) if num else np.zeros((0, embedding.num_units), dtype=bool)
    broken = np.ascontiguousarray(broken, dtype=bool)
    rows = np.arange(num)
    lengths = embedding.chain_lengths
    if method == "discard":
        if num:
            logical, rows = discard(z, chains)
        else:
            logical = np.zeros((0, embedding.num_units), dtype=np.uint8)
    elif method == "majority_vote":
        votes = np.add.reduceat(z[:, embedding._chain_order].astype(np.int64), embedding._chain_starts, axis=1) \
            if num else np.zeros((0, embedding.num_units), dtype=np.int64)
        tie = 2 * votes == lengths
        logical = (2 * votes > lengths) | (tie & (rng.random(votes.shape) < 0.5))
    else:  # weighted_random: the value of a qubit drawn uniformly from the chain, per sample and chain
        pick = (rng.random((num, embedding.num_units)) * lengths).astype(np.int64)
        logical = np.take_along_axis(z, embedding._chain_order[embedding._chain_starts + pick], axis=1)
    return Unembedding(np.ascontiguousarray(logical, dtype=np.uint8), np.asarray(rows, dtype=np.int64), broken, method)


# ---- sampling ------------------------------------------------------------------------------------


class EmbeddedSampler:
    """Samples of a logical model through its embedding: each call embeds the model (chain_strength),
    samples the physical model with `sampler.sample(physical)` and unembeds (chain_break_method,
    ties and draws seeded from (seed, call number)); returns logical (N', n) uint8 states.

    sampler: any object with sample(BoltzmannMachine) -> (N, num_qubits) states: classical emulation
    (qvae_core.dvae.PersistentChains / PopulationAnnealing, block Gibbs or population annealing of
    the physical model) or a QPU (qvae_core.dwave.QPUSampler whose topology is
    embedding.physical_topology). After a call, `last` is its Unembedding (chain-break report) and
    `last_embedded` the EmbeddedModel sampled. state_dict / load_state_dict carry the inner sampler's
    state and the call count, so a resumed run draws as the uninterrupted one (the negative-phase
    contract of qvae_core.dvae).
    """

    def __init__(self, embedding: Embedding, sampler, *, chain_strength, chain_break_method: str = "majority_vote",
                 seed=0):
        if not isinstance(embedding, Embedding):
            raise ValueError(f"embedding: expected an Embedding, got {type(embedding).__name__}")
        if not callable(getattr(sampler, "sample", None)):
            raise ValueError(f"sampler: expected an object with sample(model), got {type(sampler).__name__}")
        topology = getattr(sampler, "topology", None)  # a QPU sampler's qubits, in its unit order
        if isinstance(topology, Topology):
            if not np.array_equal(np.asarray(topology.nodes), embedding.physical_topology.nodes):
                raise ValueError(f"sampler: samples topology {topology.name!r}; an embedded problem lives on "
                                 "embedding.physical_topology (e.g. QPUSampler(topology=embedding.physical_topology) "
                                 "or sampler.topology = embedding.physical_topology)")
        if not callable(chain_strength):
            positive_float(chain_strength, "chain_strength")
        if chain_break_method not in CHAIN_BREAK_METHODS:
            raise ValueError(f"chain_break_method: expected one of {list(CHAIN_BREAK_METHODS)}, got "
                             f"{chain_break_method!r}")
        self.embedding = embedding
        self.sampler = sampler
        self.chain_strength = chain_strength
        self.chain_break_method = chain_break_method
        self.seed = seed_value(seed)
        self._calls = 0
        self.last: Unembedding | None = None
        self.last_embedded: EmbeddedModel | None = None

    def sample(self, model) -> np.ndarray:
        embedded = embed(model, self.embedding, self.chain_strength)
        states = binary_states(self.sampler.sample(embedded.physical), "sampler.sample()", self.embedding.num_qubits)
        seed = derived_seed(self.seed, self._calls)  # call k: stream k
        self._calls += 1
        self.last = unembed(states, self.embedding, self.chain_break_method, seed=seed)
        self.last_embedded = embedded
        return self.last.samples

    def state_dict(self) -> dict:
        inner = self.sampler.state_dict() if callable(getattr(self.sampler, "state_dict", None)) else None
        return {"sampler": inner, "calls": self._calls}

    def load_state_dict(self, state: dict) -> None:
        if callable(getattr(self.sampler, "load_state_dict", None)):
            self.sampler.load_state_dict(state["sampler"])
        self._calls = int(state["calls"])

    def __repr__(self) -> str:
        return f"EmbeddedSampler({self.embedding!r}, {self.sampler!r}, method={self.chain_break_method!r})"
