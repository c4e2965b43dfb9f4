"""QPU limits shared by the sampler (checked before anything is submitted) and the local server
(checked on receipt, as the real Solver API does): working graphs, anneal schedules, reads, h/J ranges.

All functions read a solver's `properties` mapping, as served by SAPI (`solver.properties`).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .._validation import finite_array, integer_array, positive_float
from ..graphs import Topology, from_labels

__all__ = [
    "working_graph", "PauseAndQuench", "validate_anneal_schedule", "check_timing", "anneal_time", "max_num_reads",
    "range_violations", "check_parameters",
]

# Slopes are compared after rounding, as dwave-system does, so that schedules built from the
# fastest allowed ramp (e.g. by PauseAndQuench) are not refused for a rounding error.
_SLOPE_DECIMALS = 10


def working_graph(solver, qubits=None) -> Topology:
    """Topology of a structured solver's working graph: active qubits (sorted labels), couplers and
    the colouring of the solver's topology family.

    Inactive qubits and couplers are simply absent. `qubits` (optional) restricts the graph to these
    qubits and the couplers among them, e.g. one patch of cells for a smaller prior.
    """
    properties = getattr(solver, "properties", None)
    if not isinstance(properties, Mapping) or "qubits" not in properties or "couplers" not in properties:
        raise ValueError("solver: expected a structured solver (properties with qubits and couplers)")
    try:
        nodes = integer_array(list(properties["qubits"]), "qubits", np.int64, (None,))
        couplers = integer_array(list(properties["couplers"]), "couplers", np.int64, (None, 2))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"solver: malformed properties ({exc})") from None
    if np.any(nodes < 0) or np.unique(nodes).size != nodes.size:
        raise ValueError("solver: qubit labels must be distinct and non-negative")
    nodes = np.sort(nodes)
    if qubits is not None:
        if not isinstance(qubits, (list, tuple, np.ndarray)):
            raise ValueError(f"qubits: expected a list of qubit labels, got {qubits!r}")
        chosen = np.unique(integer_array(list(qubits), "qubits", np.int64, (None,)))
        missing = np.setdiff1d(chosen, nodes)
        if chosen.size == 0 or missing.size:
            raise ValueError(f"qubits: not active qubits of the solver: {missing[:10].tolist()}")
        nodes = chosen
    topology = properties.get("topology") or {}
    family = None
    if isinstance(topology, Mapping) and topology.get("type") in ("chimera", "pegasus", "zephyr"):
        family = (topology["type"], topology.get("shape"))
    return from_labels(str(getattr(solver, "name", "solver")), nodes, couplers.tolist(), family)


@dataclass(frozen=True)
class PauseAndQuench:
    """Forward anneal with a pause and a quench (paper 001, App. B).

    Ramp from s = 0 to `s_pause` in `ramp_time` µs, hold for `pause_time` µs, then quench to s = 1
    in `quench_time` µs; None means the fastest ramp the solver allows,
    (1 - s_pause) * annealing_time_range[0]. The paper's values are the defaults (its 10 ns quench
    is faster than current solvers allow).
    """

    s_pause: float = 0.5
    ramp_time: float = 1.0
    pause_time: float = 10.0
    quench_time: float | None = None

    def __post_init__(self):
        if not 0.0 < positive_float(self.s_pause, "s_pause") < 1.0:
            raise ValueError(f"s_pause: must be in (0, 1), got {self.s_pause}")
        positive_float(self.ramp_time, "ramp_time")
        positive_float(self.pause_time, "pause_time", allow_zero=True)
        if self.quench_time is not None:
            positive_float(self.quench_time, "quench_time")

    def points(self, properties: Mapping) -> list[list[float]]:
        """The schedule as [[t (µs), s], ...] for a solver with these properties."""
        quench = self.quench_time
        if quench is None:
            quench = (1.0 - self.s_pause) * float(properties["annealing_time_range"][0])
        t_pause_end = self.ramp_time + self.pause_time
        points = [[0.0, 0.0], [self.ramp_time, self.s_pause]]
        if self.pause_time > 0.0:
            points.append([t_pause_end, self.s_pause])
        points.append([t_pause_end + quench, 1.0])
        return points


def validate_anneal_schedule(schedule, properties: Mapping) -> list[list[float]]:
    """Check a forward anneal schedule [[t, s], ...] against a solver's properties; returns it as floats.

    Rules (D-Wave solver docs): the solver accepts `anneal_schedule`; 2 to max_anneal_schedule_points
    points; starts at (0, 0); t strictly increasing; s non-decreasing in [0, 1] and ending at 1; last
    t <= annealing_time_range[1]; every slope <= 1 / annealing_time_range[0]. Reverse anneals (s
    starting at 1) need an initial state and are not supported here.
    """
    name = "anneal_schedule"
    if "anneal_schedule" not in properties.get("parameters", {}):
        raise ValueError(f"{name}: this solver does not accept anneal schedules")
    points = finite_array(schedule, name, ndim=2)
    if points.shape[1] != 2:
        raise ValueError(f"{name}: expected (t, s) pairs, got shape {points.shape}")
    max_points = int(properties["max_anneal_schedule_points"])
    if not 2 <= points.shape[0] <= max_points:
        raise ValueError(f"{name}: needs 2 to {max_points} points, got {points.shape[0]}")
    t, s = points[:, 0], points[:, 1]
    if s[0] == 1.0:
        raise ValueError(f"{name}: reverse anneals (s starting at 1) are not supported")
    if t[0] != 0.0 or s[0] != 0.0:
        raise ValueError(f"{name}: a forward anneal starts at (0, 0), got ({t[0]}, {s[0]})")
    if np.any(np.diff(t) <= 0.0):
        raise ValueError(f"{name}: times must be strictly increasing")
    if np.any(np.diff(s) < 0.0) or s.max() > 1.0:
        raise ValueError(f"{name}: s must be non-decreasing within [0, 1]")
    if s[-1] != 1.0:
        raise ValueError(f"{name}: the last point must have s = 1, got {s[-1]}")
    min_time, max_time = (float(x) for x in properties["annealing_time_range"])
    if t[-1] > max_time:
        raise ValueError(f"{name}: lasts {t[-1]} µs, longer than annealing_time_range[1] = {max_time}")
    slopes = np.round(np.diff(s) / np.diff(t), _SLOPE_DECIMALS)
    if slopes.max() > 1.0 / min_time:
        k = int(np.argmax(slopes))
        raise ValueError(
            f"{name}: slope {slopes[k]:.4g}/µs between points {k} and {k + 1} exceeds "
            f"1 / annealing_time_range[0] = {1.0 / min_time:.4g}/µs"
        )
    return points.tolist()


def check_timing(params: Mapping, properties: Mapping) -> None:
    """annealing_time, programming_thermalization and readout_thermalization numbers within the
    solver's *_range, and annealing_time not together with an anneal_schedule (whose own checks are
    validate_anneal_schedule's)."""
    if "anneal_schedule" in params and "annealing_time" in params:
        raise ValueError("annealing_time conflicts with anneal_schedule")
    for name in ("annealing_time", "programming_thermalization", "readout_thermalization"):
        if name in params and f"{name}_range" in properties:
            lo, hi = properties[f"{name}_range"]
            value = params[name]
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not lo <= value <= hi:
                raise ValueError(f"{name}: must be a number in [{lo}, {hi}], got {value!r}")


def anneal_time(params: Mapping, properties: Mapping) -> float:
    """Microseconds one anneal takes: the schedule's last time, else annealing_time or the default."""
    if "anneal_schedule" in params:
        return float(params["anneal_schedule"][-1][0])
    return float(params.get("annealing_time", properties["default_annealing_time"]))


def max_num_reads(params: Mapping, properties: Mapping) -> int:
    """Most reads one problem may ask for with these parameters (as dwave-cloud-client estimates it).

    num_reads_range[1], further limited by problem_run_duration_range when the solver has it:
    (duration - programming_thermalization) / (anneal time + readout_thermalization).
    """
    limit = int(properties["num_reads_range"][1])
    if "problem_run_duration_range" not in properties:
        return limit
    readout = float(params.get("readout_thermalization", properties.get("default_readout_thermalization", 0.0)))
    programming = float(
        params.get("programming_thermalization", properties.get("default_programming_thermalization", 0.0))
    )
    duration = float(properties["problem_run_duration_range"][1])
    return min(limit, int((duration - programming) / (anneal_time(params, properties) + readout)))


def range_violations(h: np.ndarray, J: np.ndarray, props: dict) -> list:
    """What of an Ising problem lies outside the solver's h_range and j_range, one phrase per
    offending kind ("3 of 16 h values outside h_range [-4.0, 4.0] (largest excess 0.5)")."""
    found = []
    for name, values, key in (("h", h, "h_range"), ("J", J, "j_range")):
        lo, hi = (float(b) for b in props[key])
        excess = np.maximum(np.maximum(values - hi, lo - values), 0.0)
        if excess.size and excess.max() > 0.0:
            found.append(f"{int((excess > 0).sum())} of {values.size} {name} values outside {key} "
                         f"{list(props[key])} (largest excess {excess.max():.4g})")
    return found


def check_parameters(params: Mapping, properties: Mapping) -> None:
    """The solver parameters of one problem as a QPU checks them on receipt: only parameters the
    solver lists (experimental x_* ones too), each of its type (flags true or false, per-qubit
    lists of num_qubits numbers, ...), timing and anneal schedule within the solver's ranges,
    num_reads within [num_reads_range[0], max_num_reads], answer_mode 'raw' or 'histogram',
    max_answers a positive integer."""
    unknown = [k for k in params if k not in properties["parameters"]]
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for this solver")
    _check_types(params, int(properties["num_qubits"]))
    check_timing(params, properties)
    if "anneal_schedule" in params:
        validate_anneal_schedule(params["anneal_schedule"], properties)
    num_reads = params.get("num_reads", 1)
    lo, _ = properties["num_reads_range"]
    hi = max_num_reads(params, properties)
    if not _is_integer(num_reads) or not lo <= num_reads <= hi:
        raise ValueError(f"num_reads: must be an integer in [{lo}, {hi}] for these parameters, got {num_reads!r}")
    if params.get("answer_mode", "histogram") not in ("raw", "histogram"):
        raise ValueError(f"answer_mode: must be 'raw' or 'histogram', got {params['answer_mode']!r}")
    if "max_answers" in params and not (_is_integer(params["max_answers"]) and params["max_answers"] >= 1):
        raise ValueError(f"max_answers: must be a positive integer, got {params['max_answers']!r}")


_FLAGS = ("auto_scale", "flux_drift_compensation", "reduce_intersample_correlation", "reinitialize_state")
_PER_QUBIT = ("anneal_offsets", "flux_biases", "initial_state")  # one number per qubit (num_qubits)


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_types(params: Mapping, num_qubits: int) -> None:
    """The types of the parameters a QPU accepts but the emulator does not model (see README)."""
    for name in _FLAGS:
        if name in params and not isinstance(params[name], bool):
            raise ValueError(f"{name}: expected true or false, got {params[name]!r}")
    for name in _PER_QUBIT:
        value = params.get(name)
        if name in params and not (isinstance(value, list) and len(value) == num_qubits
                                   and all(_is_number(v) for v in value)):
            raise ValueError(f"{name}: expected a list of num_qubits = {num_qubits} numbers")
    if "initial_state" in params and not all(v in (-1, 0, 1, 3) for v in params["initial_state"]):
        raise ValueError("initial_state: expected -1/+1 (Ising) or 0/1 (QUBO) per qubit, 3 where unused")
    if "h_gain_schedule" in params:
        points = params["h_gain_schedule"]
        if not (isinstance(points, list)
                and all(isinstance(p, list) and len(p) == 2 and all(_is_number(v) for v in p) for p in points)):
            raise ValueError("h_gain_schedule: expected a list of [t, g] pairs of numbers")
    if "label" in params and not isinstance(params["label"], str):
        raise ValueError(f"label: expected a string, got {params['label']!r}")
