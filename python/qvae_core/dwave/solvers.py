"""Solver definitions for the local SAPI server: QPU-like Chimera, Pegasus and Zephyr solvers.

A definition is the JSON document SAPI serves for a solver (identity, status, description,
properties, avg_load). Properties are modelled on D-Wave Advantage systems; any of them can be
overridden. Qubit labels are the linear labels of dwave-networkx; inactive qubits are left out of
`qubits`, with their couplers, while `num_qubits` stays the nominal count, as on real chips.
LocalSolver is a definition read into arrays, as the server uses it.
"""

from __future__ import annotations

import copy
import hashlib
import numbers
from dataclasses import dataclass

import numpy as np

from .. import graphs
from .._validation import finite_array, integer_array, positive_float, positive_int, seed_value

__all__ = ["qpu_solver", "SOLVER_PARAMETERS", "LocalSolver"]

# Parameters a QPU solver accepts (name -> description), as listed in its `parameters` property.
SOLVER_PARAMETERS = {
    "anneal_offsets": "A list of anneal offsets for each working qubit (NaN if unused).",
    "anneal_schedule": "A piecewise linear anneal schedule: [t, s] pairs, t in microseconds, s the anneal fraction.",
    "annealing_time": "Duration of the anneal, in microseconds, per read.",
    "answer_mode": "'histogram' (distinct answers sorted by energy, with counts) or 'raw' (every read, in order).",
    "auto_scale": "Automatically rescale h and J values to the range of the QPU.",
    "flux_biases": "A list of flux-bias offsets for each qubit.",
    "flux_drift_compensation": "Whether to compensate for flux drift.",
    "h_gain_schedule": "A piecewise linear schedule of time-dependent gain for h.",
    "initial_state": "Initial states to use for a reverse-anneal request.",
    "label": "Problem label.",
    "max_answers": "Maximum number of answers returned from the solver.",
    "num_reads": "Number of states to read (answers to return), as a positive integer.",
    "programming_thermalization": "Time in microseconds to wait after programming the QPU.",
    "readout_thermalization": "Time in microseconds to wait after each state is read from the QPU.",
    "reduce_intersample_correlation": "Whether to add delay between reads to reduce correlation.",
    "reinitialize_state": "Whether to reapply the initial state after each reverse-anneal read.",
}

_BASE_PROPERTIES = {
    "category": "qpu",
    "supported_problem_types": ["ising", "qubo"],
    "tags": [],
    "vfyc": False,
    "h_range": [-4.0, 4.0],
    "j_range": [-1.0, 1.0],
    "extended_j_range": [-2.0, 1.0],
    "per_qubit_coupling_range": [-18.0, 15.0],
    "num_reads_range": [1, 10000],
    "annealing_time_range": [0.5, 2000.0],
    "default_annealing_time": 20.0,
    "max_anneal_schedule_points": 12,
    "max_h_gain_schedule_points": 20,
    "problem_run_duration_range": [0.0, 1000000.0],
    "programming_thermalization_range": [0.0, 10000.0],
    "readout_thermalization_range": [0.0, 10000.0],
    "default_programming_thermalization": 1000.0,
    "default_readout_thermalization": 0.0,
    "quota_conversion_rate": 1,
    "parameters": SOLVER_PARAMETERS,
}


def _full_graph(topology: str, dims: list):
    """(Topology with every qubit, nominal qubit count, canonical shape)."""
    if topology == "chimera" and 1 <= len(dims) <= 3:
        m, n, t = dims[0], dims[1] if len(dims) > 1 else dims[0], dims[2] if len(dims) > 2 else 4
        return graphs.chimera(m, n, t), 2 * m * n * t, [m, n, t]
    if topology == "pegasus" and len(dims) == 1:
        m = dims[0]
        return graphs.pegasus(m), 24 * m * (m - 1), [m]
    if topology == "zephyr" and 1 <= len(dims) <= 2:
        m, t = dims[0], dims[1] if len(dims) > 1 else 4
        return graphs.zephyr(m, t), 4 * t * m * (2 * m + 1), [m, t]
    if topology not in ("chimera", "pegasus", "zephyr"):
        raise ValueError(f"topology: expected 'chimera', 'pegasus' or 'zephyr', got {topology!r}")
    raise ValueError(f"shape: {dims} does not fit a {topology} graph (chimera: m[,n,t]; pegasus: m; zephyr: m[,t])")


def qpu_solver(
    topology: str,
    shape,
    *,
    name: str | None = None,
    inactive_qubits=None,
    inactive_fraction: float = 0.0,
    seed=0,
    **properties,
) -> dict:
    """SAPI definition of a QPU-like solver on Chimera (m[, n, t]), Pegasus (m) or Zephyr (m[, t]).

    Inactive qubits: an explicit list of labels, or a random `inactive_fraction` of the qubits
    (drawn with `seed`). Keyword arguments override properties (e.g. h_range=[-2, 2]).
    """
    if not isinstance(shape, (numbers.Integral, list, tuple)):
        raise ValueError(f"shape: expected an integer or a list of them, got {shape!r}")
    dims = [shape] if isinstance(shape, numbers.Integral) else list(shape)
    full, num_qubits, canonical = _full_graph(topology, [positive_int(d, "shape") for d in dims])
    if inactive_qubits is not None and inactive_fraction:
        raise ValueError("inactive_fraction: give either inactive_qubits or inactive_fraction, not both")
    inactive_fraction = positive_float(inactive_fraction, "inactive_fraction", allow_zero=True)
    if not inactive_fraction < 1.0:
        raise ValueError(f"inactive_fraction: must be in [0, 1), got {inactive_fraction}")
    if inactive_qubits is None:
        rng = np.random.default_rng(seed_value(seed))
        count = int(round(inactive_fraction * full.num_units))
        inactive = rng.choice(full.nodes, size=count, replace=False)
    else:
        inactive = np.unique(integer_array(list(inactive_qubits), "inactive_qubits", np.int64, (None,)))
        unknown = np.setdiff1d(inactive, full.nodes)
        if unknown.size:
            raise ValueError(f"inactive_qubits: not qubits of this graph: {unknown[:10].tolist()}")
    keep = ~np.isin(full.nodes, inactive)
    qubits = full.nodes[keep]
    if qubits.size == 0:
        raise ValueError("inactive_qubits: no qubit of the graph would be active")
    pairs = full.nodes[full.edges]
    couplers = pairs[keep[full.edges[:, 0]] & keep[full.edges[:, 1]]]
    digest = hashlib.sha1(qubits.tobytes() + couplers.tobytes()).hexdigest()[:10]
    props = copy.deepcopy(_BASE_PROPERTIES)  # its lists and dicts belong to this solver alone
    props.update(
        chip_id=name or f"local_{topology}_{'x'.join(map(str, canonical))}",
        topology={"type": topology, "shape": canonical},
        num_qubits=num_qubits,
        qubits=qubits.tolist(),
        couplers=couplers.tolist(),
    )
    structural = sorted({"qubits", "couplers", "topology", "num_qubits", "chip_id"} & set(properties))
    if structural:
        raise ValueError(f"{', '.join(structural)}: set by the topology, shape and inactive qubits (name: chip_id)")
    for key, value in properties.items():  # new properties are welcome; ranges must be ranges
        if key.endswith("_range"):
            bounds = finite_array(value, key, ndim=1, shape=(2,))
            if bounds[0] > bounds[1]:
                raise ValueError(f"{key}: expected [low, high], got {list(value)}")
    props.update(properties)
    return {
        "identity": {"name": props["chip_id"], "version": {"graph_id": digest}},
        "status": "ONLINE",
        "description": f"Local {topology} solver answering with Boltzmann samples (qvae-core)",
        "properties": props,
        "avg_load": 0.0,
    }


@dataclass(frozen=True)
class LocalSolver:
    """A solver definition with its working graph as arrays: `qubits` (labels, in
    properties["qubits"] order, the order of a `qp` problem's `lin`) and `couplers`, (m, 2)
    positions into `qubits` in properties["couplers"] order."""

    definition: dict
    qubits: np.ndarray
    couplers: np.ndarray

    @classmethod
    def from_definition(cls, definition, where: str = "solver") -> LocalSolver:
        """Read a definition, checking every field the server uses; a malformed one raises
        ValueError naming it (`where`.properties.h_range, ...)."""
        if not isinstance(definition, dict):
            raise ValueError(f"{where}: expected a solver definition (a JSON object), got {type(definition).__name__}")
        identity = _field(definition, "identity", where, dict)
        if not _field(identity, "name", f"{where}.identity", str):
            raise ValueError(f"{where}.identity.name: must not be empty")
        _field(_field(identity, "version", f"{where}.identity", dict), "graph_id", f"{where}.identity.version", str)
        props = _field(definition, "properties", where, dict)
        where = f"{where}.properties"
        qubits = integer_array(_field(props, "qubits", where, list), f"{where}.qubits", np.int64, (None,))
        if qubits.size == 0 or qubits.min() < 0 or np.unique(qubits).size != qubits.size:
            raise ValueError(f"{where}.qubits: expected distinct non-negative labels, at least one")
        num_qubits = _field(props, "num_qubits", where, numbers.Integral)
        if num_qubits <= qubits.max():
            raise ValueError(f"{where}.num_qubits: must exceed every qubit label (largest {qubits.max()}), "
                             f"got {num_qubits}")
        listed = _field(props, "couplers", where, list)
        pairs = np.empty((0, 2), np.int64)
        if listed:
            pairs = integer_array(listed, f"{where}.couplers", np.int64, (None, 2))
        order = np.argsort(qubits)
        found = np.searchsorted(qubits[order], pairs).clip(max=qubits.size - 1)
        couplers = order[found]
        if np.any(qubits[couplers] != pairs) or np.any(pairs[:, 0] == pairs[:, 1]):
            raise ValueError(f"{where}.couplers: each must join two different qubits of properties.qubits")
        if np.unique(np.sort(pairs, axis=1), axis=0).shape[0] != pairs.shape[0]:
            raise ValueError(f"{where}.couplers: listed more than once")
        _field(props, "parameters", where, dict)
        _check_properties(props, where)
        return cls(definition, qubits, couplers.reshape(-1, 2))

    @property
    def name(self) -> str:
        return self.definition["identity"]["name"]

    @property
    def graph_id(self) -> str:
        return self.definition["identity"]["version"]["graph_id"]

    @property
    def properties(self) -> dict:
        return self.definition["properties"]


def _field(node: dict, key: str, where: str, kind):
    """node[key], which must be of `kind` (bool is no number)."""
    value = node.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = {dict: "an object", list: "a list", str: "a string", numbers.Integral: "an integer",
                 numbers.Real: "a number"}
        raise ValueError(f"{where}.{key}: expected {names[kind]}, got {_short(value)}")
    return value


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_properties(props: dict, where: str) -> None:
    """The ranges and defaults the server's checks and answers read (hardware.py)."""
    for key, value in props.items():
        if key.endswith("_range"):
            bounds = finite_array(value, f"{where}.{key}", ndim=1, shape=(2,))
            if bounds[0] > bounds[1]:
                raise ValueError(f"{where}.{key}: expected [low, high], got {_short(value)}")
    for key in ("h_range", "j_range", "num_reads_range", "annealing_time_range"):
        if key not in props:
            raise ValueError(f"{where}.{key}: missing")
    for key in ("h_range", "j_range"):  # auto_scale divides by both bounds
        if not props[key][0] < 0 < props[key][1]:
            raise ValueError(f"{where}.{key}: expected [low < 0, high > 0], got {_short(props[key])}")
    lo, hi = props["num_reads_range"]
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in (lo, hi)) or lo < 1:
        raise ValueError(f"{where}.num_reads_range: expected integers [low >= 1, high], got {_short([lo, hi])}")
    shortest, longest = props["annealing_time_range"]
    if not shortest > 0:  # schedule slopes are limited to 1 / shortest
        raise ValueError(f"{where}.annealing_time_range: the shortest anneal must be > 0, got {shortest}")
    default = _field(props, "default_annealing_time", where, numbers.Real)
    if not shortest <= default <= longest:
        raise ValueError(f"{where}.default_annealing_time: must lie in annealing_time_range, got {default}")
    for key in ("default_programming_thermalization", "default_readout_thermalization"):
        if key in props and not _field(props, key, where, numbers.Real) >= 0:
            raise ValueError(f"{where}.{key}: must be >= 0, got {props[key]}")
    if "anneal_schedule" in props["parameters"]:
        if _field(props, "max_anneal_schedule_points", where, numbers.Integral) < 2:
            raise ValueError(f"{where}.max_anneal_schedule_points: must be at least 2")
