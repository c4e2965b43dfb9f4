"""The QPU of the local SAPI server: answers a problem on a solver's working graph as a QPU answers
it, with reads, but drawn as Boltzmann samples. No HTTP, no queue: a Problem in, a Sampleset out.

A Problem is an Ising problem H(s) = sum_i h_i s_i + sum_k J_k s_{i_k} s_{j_k} on some working
qubits of a solver and the couplers among them (a QUBO keeps its own biases for its energies).
`QPUEmulator.sample` draws `num_reads` independent block-Gibbs chains, `sweeps` sweeps each, of
p(s) ~ exp(-beta H(s) / r), r the auto_scale factor (1 with auto_scale off), and returns them as the
QPU's answer holds them: histogram (distinct states by increasing energy, with counts) or raw,
cut to max_answers, with the QPU's timing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, NamedTuple

import numpy as np

from .._validation import positive_float, positive_int
from ..models import BoltzmannMachine
from ..samplers import GibbsSampler
from .hardware import anneal_time
from .solvers import LocalSolver

__all__ = ["Problem", "Sampleset", "QPUEmulator", "MAX_BETA"]

MAX_BETA = 1e4  # |h|, |J| of a few units times beta stay within the models' MAX_PARAMETER (1e6)

# The QPU's timing model (µs): per-read readout and delay, and one programming of the chip.
_READOUT_TIME, _DELAY_TIME, _PROGRAMMING_TIME = 100.0, 20.0, 15000.0


@dataclass(frozen=True)
class Problem:
    """A checked problem on `solver`'s working graph (see jobs.parse_job).

    qubits: positions into solver.qubits of the qubits used; edges: (m, 2) couplers among them as
    positions into `qubits`; linear, quadratic: the biases as submitted (Ising or QUBO); h, J: its
    Ising form, s = 2x - 1 for a QUBO; params: the solver parameters, already checked.
    """

    solver: LocalSolver
    type: str  # "ising" or "qubo"
    params: Mapping
    qubits: np.ndarray
    edges: np.ndarray
    linear: np.ndarray
    quadratic: np.ndarray
    h: np.ndarray
    J: np.ndarray

    @property
    def labels(self) -> np.ndarray:
        """The qubit labels used, in the order of the problem's variables."""
        return self.solver.qubits[self.qubits]

    @property
    def num_reads(self) -> int:
        return int(self.params.get("num_reads", 1))


class Sampleset(NamedTuple):
    """A QPU answer: `states` (answers, n) of bits in Problem.labels order (1 = spin +1 for Ising
    problems), their `energies` under the submitted biases (no offset), `num_occurrences`, `timing`."""

    states: np.ndarray
    energies: np.ndarray
    num_occurrences: np.ndarray
    timing: dict

    def first_reads(self, count: int) -> Sampleset:
        """The first `count` reads (all of them if fewer): the answers reached before them, the last one's
        occurrences cut at `count` (a truncated answer; never an empty one, which a client cannot decode)."""
        before = np.cumsum(self.num_occurrences) - self.num_occurrences
        keep = before < count
        return self._replace(states=self.states[keep], energies=self.energies[keep],
                             num_occurrences=np.minimum(self.num_occurrences[keep], count - before[keep]))


class QPUEmulator:
    """Answers Problems with Boltzmann samples at inverse temperature `beta` (at most MAX_BETA), each
    read an independent block-Gibbs chain run for `sweeps` sweeps."""

    def __init__(self, *, beta: float = 2.0, sweeps: int = 1000):
        self.beta = positive_float(beta, "beta")
        if self.beta > MAX_BETA:
            raise ValueError(f"beta: at most {MAX_BETA:g} (beta times the solver's ranges must stay a model "
                             f"parameter), got {self.beta:g}")
        self.sweeps = positive_int(sweeps, "sweeps")

    def sample(self, problem: Problem, seed: int) -> Sampleset:
        """num_reads reads of exp(-beta H / r), shaped as the problem's answer_mode and max_answers ask."""
        props = problem.solver.properties
        edges, h, J = problem.edges, problem.h, problem.J
        scale = 1.0
        if problem.params.get("auto_scale", True):
            scale = max(_autoscale_ratio(h, props["h_range"]), _autoscale_ratio(J, props["j_range"])) or 1.0
        # scaled first: |h| / r is within the ranges, while beta |h| may overflow (|h| up to 1.8e308)
        model, _ = BoltzmannMachine.from_ising(h / scale * self.beta, edges, J / scale * self.beta)
        num_reads = problem.num_reads
        z = GibbsSampler(model, num_reads, seed=seed).run(self.sweeps)
        if problem.type == "ising":
            s = 2.0 * z - 1.0
            energies = s @ h + (s[:, edges[:, 0]] * s[:, edges[:, 1]]) @ J
        else:
            x = z.astype(float)
            energies = x @ problem.linear + (x[:, edges[:, 0]] * x[:, edges[:, 1]]) @ problem.quadratic
        if problem.params.get("answer_mode", "histogram") == "histogram":
            z, index, counts = np.unique(z, axis=0, return_index=True, return_counts=True)
            energies = energies[index]
            order = np.argsort(energies, kind="stable")
            z, energies, counts = z[order], energies[order], counts[order]
        else:
            counts = np.ones(z.shape[0], dtype=np.int64)
        if "max_answers" in problem.params:
            keep = int(problem.params["max_answers"])
            z, energies, counts = z[:keep], energies[:keep], counts[:keep]
        return Sampleset(z, energies, counts, _qpu_timing(problem.params, props, num_reads))


def _autoscale_ratio(values: np.ndarray, bounds) -> float:
    """Largest ratio of a value to the bound on its side (the QPU's auto_scale factor)."""
    lo, hi = (float(b) for b in bounds)
    if values.size == 0:
        return 0.0
    return float(max(values.max() / hi, values.min() / lo, 0.0))


def _qpu_timing(params: Mapping, properties: Mapping, num_reads: int) -> dict:
    """The `timing` of an answer (µs), as a QPU reports it."""
    per_sample = anneal_time(params, properties)
    sampling = num_reads * (per_sample + _READOUT_TIME + _DELAY_TIME)
    return {
        "qpu_anneal_time_per_sample": per_sample,
        "qpu_readout_time_per_sample": _READOUT_TIME,
        "qpu_delay_time_per_sample": _DELAY_TIME,
        "qpu_sampling_time": sampling,
        "qpu_programming_time": _PROGRAMMING_TIME,
        "qpu_access_overhead_time": 0.0,
        "qpu_access_time": _PROGRAMMING_TIME + sampling,
        "post_processing_overhead_time": 0.0,
        "total_post_processing_time": 0.0,
    }
