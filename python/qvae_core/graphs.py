"""Working graphs of D-Wave topologies (Chimera, Pegasus, Zephyr) and block colourings.

Graphs come from dwave-networkx (extra `graphs`), the field's standard generator, with its
linear qubit labels. A `Topology` lists the qubits (sorted labels) and the couplers as pairs of
positions in that list, which is the unit order of a BoltzmannMachine built on it. Graphs of a
D-Wave family carry that family's colouring from dwave-networkx (Chimera 2 colours, Pegasus and
Zephyr 4), which a BoltzmannMachine built on them uses as its Gibbs blocks; other graphs are
coloured by DSatur.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import _core
from ._validation import edge_array, integer_array, npz_archive, positive_float, positive_int, seed_value
from .models import BoltzmannMachine

__all__ = [
    "Topology",
    "chimera",
    "pegasus",
    "zephyr",
    "from_networkx",
    "from_labels",
    "save",
    "load",
    "coloring",
    "family_colors",
    "random_boltzmann_machine",
]


class Topology(NamedTuple):
    """Qubit labels (sorted, int64), couplers as (m, 2) positions into `nodes`, and a proper colouring
    (int32 per qubit; the family's for D-Wave graphs) or None, in which case a BoltzmannMachine
    built on it is coloured by DSatur."""

    name: str
    nodes: np.ndarray
    edges: np.ndarray
    colors: np.ndarray | None = None

    @property
    def num_units(self) -> int:
        return int(self.nodes.shape[0])

    def __eq__(self, other):
        """Same name, nodes, edges and colouring (a tuple's == would compare arrays ambiguously)."""
        if not isinstance(other, Topology):
            return NotImplemented
        return self.name == other.name and all(
            (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
            for a, b in zip(self[1:], other[1:]))

    def __ne__(self, other):
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self):
        return hash((self.name, self.nodes.tobytes(), self.edges.tobytes()))


def load_dwave_networkx():
    """The dwave_networkx module (extra `graphs`), or ImportError saying how to install it."""
    try:
        with warnings.catch_warnings():  # its import announces a successor package; not ours to act on
            warnings.filterwarnings("ignore", "dwave-networkx is deprecated", DeprecationWarning)
            import dwave_networkx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the topology helpers need dwave-networkx: pip install 'qvae-core[graphs]'"
        ) from exc
    return dwave_networkx


def from_networkx(graph, name: str = "graph") -> Topology:
    """Topology of any networkx graph with integer node labels (e.g. a solver's working graph).
    A dwave-networkx graph with linear labels, or a subgraph that kept its attributes, gets its
    family's colouring."""
    if not all(hasattr(graph, key) for key in ("graph", "nodes", "edges", "is_directed", "is_multigraph")):
        raise ValueError(f"graph: expected a networkx graph, got {type(graph).__name__}")
    if graph.is_directed() or graph.is_multigraph():
        raise ValueError("graph: expected an undirected simple graph (networkx.Graph)")
    labels = list(graph.nodes)
    bad = [v for v in labels if not _is_label(v)]
    if bad:
        raise ValueError(f"graph: node labels must be integers in [0, 2**63), got {bad[0]!r}")
    info = graph.graph
    shape = {"chimera": ("rows", "columns", "tile"), "pegasus": ("rows",), "zephyr": ("rows", "tile")}
    family = None
    if info.get("labels") == "int" and info.get("family") in shape:
        family = (info["family"], [info.get(key) for key in shape[info["family"]]])
    try:
        return from_labels(name, labels, graph.edges, family)
    except ValueError as exc:  # e.g. self-loops
        raise ValueError(f"graph: {exc}") from None


def _is_label(v) -> bool:
    """A qubit label: a whole number in [0, 2**63) (an int, or a float such as 3.0; not a bool)."""
    return (not isinstance(v, bool) and isinstance(v, numbers.Real) and math.isfinite(v)
            and float(v).is_integer() and 0 <= v < 2**63)


def from_labels(name: str, labels, label_pairs, family: tuple | None = None) -> Topology:
    """Topology on the integer `labels` (sorted) with those of `label_pairs` that join two of them;
    `family` = (D-Wave family, its shape) for that family's colouring, kept if it fits the graph
    (else, e.g. for an edited graph, colors is None and a BoltzmannMachine gets DSatur's)."""
    nodes = np.array(sorted(int(v) for v in labels), dtype=np.int64)
    position = {int(q): k for k, q in enumerate(nodes)}
    pairs = sorted(
        tuple(sorted((position[int(u)], position[int(v)])))
        for u, v in label_pairs
        if int(u) in position and int(v) in position
    )
    edges = edge_array(np.array(pairs, dtype=np.int64).reshape(-1, 2), "edges", nodes.shape[0])
    colors = None
    if family is not None:
        try:
            colors = _check_colors(family_colors(*family, nodes), edges, nodes.shape[0])
        except ValueError:  # a shape or labels that are not the family's, or edges it lacks
            colors = None
    return Topology(name, nodes, edges, colors)


# Linear labels of a family graph of a given shape, 0 to this count - 1 (Pegasus: the full graph,
# of which the fabric is a part).
_NUM_LABELS = {
    "chimera": lambda m, n, t: 2 * m * n * t,
    "pegasus": lambda m: 24 * m * (m - 1),
    "zephyr": lambda m, t: 4 * t * m * (2 * m + 1),
}


def family_colors(family: str, shape, labels) -> np.ndarray:
    """The colour of each linear qubit label of a D-Wave family graph, from dwave-networkx:
    chimera_two_color (shape [m, n, t]), pegasus_four_color ([m], m >= 2) or zephyr_four_color
    ([m, t]). Labels outside the family graph raise ValueError."""
    dnx = load_dwave_networkx()
    shape = list(shape) if isinstance(shape, (list, tuple, np.ndarray)) else [shape]
    if family == "chimera" and len(shape) == 3:
        m, n, t = (positive_int(v, "shape") for v in shape)
        count, color = _NUM_LABELS["chimera"](m, n, t), dnx.chimera_two_color
        to_coordinates = dnx.chimera_coordinates(m, n, t).iter_linear_to_chimera
    elif family == "pegasus" and len(shape) == 1:
        m = positive_int(shape[0], "shape", minimum=2)
        count, color = _NUM_LABELS["pegasus"](m), dnx.pegasus_four_color
        to_coordinates = dnx.pegasus_coordinates(m).iter_linear_to_pegasus
    elif family == "zephyr" and len(shape) == 2:
        m, t = (positive_int(v, "shape") for v in shape)
        count, color = _NUM_LABELS["zephyr"](m, t), dnx.zephyr_four_color
        to_coordinates = dnx.zephyr_coordinates(m, t).iter_linear_to_zephyr
    else:
        raise ValueError(f"family: expected chimera [m, n, t], pegasus [m] or zephyr [m, t], got {family!r} {shape}")
    labels = integer_array(labels, "labels", np.int64, (None,))
    if labels.size and (labels.min() < 0 or labels.max() >= count):
        raise ValueError(f"labels: a {family} {shape} graph has linear labels 0 to {count - 1}")
    return np.array([color(c) for c in to_coordinates(labels.tolist())], dtype=np.int32)


# Largest family graph built: D-Wave's processors have a few thousand qubits, and dwave-networkx
# builds a graph node by node (a million qubits take a minute and gigabytes).
MAX_FAMILY_QUBITS = 1_000_000


def _check_size(name: str, num_qubits: int) -> None:
    if num_qubits > MAX_FAMILY_QUBITS:
        raise ValueError(f"{name}: up to {num_qubits} qubits, more than MAX_FAMILY_QUBITS = {MAX_FAMILY_QUBITS}")


def chimera(m: int, n: int | None = None, t: int = 4) -> Topology:
    """Chimera C(m, n, t) working graph (bipartite: two colours)."""
    m = positive_int(m, "m")
    n = m if n is None else positive_int(n, "n")
    t = positive_int(t, "t")
    _check_size(f"chimera({m},{n},{t})", _NUM_LABELS["chimera"](m, n, t))
    return from_networkx(load_dwave_networkx().chimera_graph(m, n, t), f"chimera({m},{n},{t})")


def pegasus(m: int) -> Topology:
    """Pegasus P(m) working graph (fabric only, linear labels); m >= 2; four colours."""
    m = positive_int(m, "m", minimum=2)
    _check_size(f"pegasus({m})", _NUM_LABELS["pegasus"](m))
    return from_networkx(load_dwave_networkx().pegasus_graph(m), f"pegasus({m})")


def zephyr(m: int, t: int = 4) -> Topology:
    """Zephyr Z(m, t) working graph (linear labels); four colours."""
    m = positive_int(m, "m")
    t = positive_int(t, "t")
    _check_size(f"zephyr({m},{t})", _NUM_LABELS["zephyr"](m, t))
    return from_networkx(load_dwave_networkx().zephyr_graph(m, t), f"zephyr({m},{t})")


def save(topology: Topology, path) -> Path:
    """Writes a topology (e.g. a solver's working graph) to an .npz file: name, nodes, edges and,
    if it has them, colors. Returns the path written (numpy adds .npz to a name without it). What
    `load` would refuse is refused here (ValueError naming topology)."""
    if not isinstance(topology, Topology) or not isinstance(topology.name, str):
        raise ValueError(f"topology: expected a Topology with a str name, got {topology!r}")
    try:
        nodes, edges, colors = checked_parts(topology.nodes, topology.edges, topology.colors)
    except ValueError as exc:
        raise ValueError(f"topology: {exc}") from None
    arrays = {"name": np.array(topology.name), "nodes": nodes, "edges": edges}
    if colors is not None:
        arrays["colors"] = colors
    path = Path(path)
    path = path if path.suffix == ".npz" else path.with_name(path.name + ".npz")
    np.savez(path, **arrays)
    return path


def checked_parts(nodes, edges, colors):
    """(nodes int64 increasing, edges, colors int32 or None) of a topology, or ValueError."""
    nodes = integer_array(nodes, "nodes", np.int64, (None,))
    if np.any(np.diff(nodes) <= 0):
        raise ValueError("nodes: labels must be increasing")
    edges = edge_array(edges, "edges", nodes.shape[0])
    if colors is not None:
        colors = _check_colors(colors, edges, nodes.shape[0])
    return nodes, edges, colors


def load(path) -> Topology:
    """Reads a topology written by `save`; a missing or malformed file raises ValueError naming it."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"path: expected a file name, got {type(path).__name__}")
    try:
        with open(path, "rb") as file:  # ours to close, also when numpy fails half-way through a bad zip
            data = npz_archive(file)  # (member sizes checked before reading)
            name, nodes, edges = str(data["name"]), np.asarray(data["nodes"]), np.asarray(data["edges"])
            colors = np.asarray(data["colors"]) if "colors" in data.files else None
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a topology file written by qvae_core.graphs.save ({exc})") from None
    try:
        nodes, edges, colors = checked_parts(nodes, edges, colors)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return Topology(name, nodes, np.array(edges), colors)


def _check_colors(colors, edges, num_units: int) -> np.ndarray:
    """`colors` as int32 if a BoltzmannMachine on these edges takes them as its blocks, else its
    ValueError naming `colors`."""
    colors = integer_array(colors, "colors", np.int32, (num_units,))
    BoltzmannMachine(np.zeros(num_units), edges, np.zeros(edges.shape[0]), colors=colors)
    return colors


def coloring(num_units: int, edges) -> np.ndarray:
    """A proper colouring as int32 per unit by DSatur: 2 colours if bipartite, else few (Pegasus 4,
    Zephyr 5, where its family colouring has 4: Topology.colors)."""
    num_units = positive_int(num_units, "num_units")
    return np.asarray(_core.greedy_coloring(num_units, edge_array(edges, "edges", num_units)))


def random_boltzmann_machine(
    topology: Topology, *, weight_scale: float = 1.0, bias_scale: float = 0.1, seed=None
) -> BoltzmannMachine:
    """A BoltzmannMachine on `topology` with N(0, scale^2) weights and biases."""
    if not isinstance(topology, Topology):
        raise ValueError(f"topology: expected a Topology, got {type(topology).__name__}")
    weight_scale = positive_float(weight_scale, "weight_scale", allow_zero=True)
    bias_scale = positive_float(bias_scale, "bias_scale", allow_zero=True)
    rng = np.random.default_rng(seed_value(seed))
    return BoltzmannMachine(
        rng.normal(0.0, bias_scale, topology.num_units),
        topology.edges,
        rng.normal(0.0, weight_scale, topology.edges.shape[0]),
        colors=topology.colors,
    )
