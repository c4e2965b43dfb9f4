"""A submitted SAPI job checked as a QPU checks it on receipt, into an emulator Problem.

The job is one JSON object of a `problems/` submission: solver (a name or an identity with
`version.graph_id`), type ('ising' or 'qubo'), data (the `qp` format), params and label. The
parameter and range rules are the hardware rules the sampler also applies before it submits
(hardware.py); a refused job raises JobError with the HTTP status SAPI answers it with.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..models import BoltzmannMachine
from . import qp
from .emulator import Problem
from .hardware import check_parameters, range_violations
from .solvers import LocalSolver

__all__ = ["JobError", "parse_job"]


class JobError(Exception):
    """A refused job: `code` is the HTTP status (400 malformed or refused, 404 unknown solver)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def parse_job(job, solvers: Mapping[str, LocalSolver]) -> Problem:
    """The Problem a job describes, on one of `solvers` (by name); raises JobError if it is refused.

    Every malformed job is a JobError, never another exception: one bad job of a batch must not
    fail the others.
    """
    if not isinstance(job, dict):
        raise JobError(400, "each job must be a JSON object")
    identity = job.get("solver") or {}
    name = identity.get("name") if isinstance(identity, dict) else identity
    if not isinstance(name, str):
        raise JobError(400, f"solver: expected a name or an identity object, got {identity!r:.60}")
    solver = solvers.get(name)
    if solver is None:
        raise JobError(404, f"solver {name!r:.60} not found")
    version = identity.get("version") if isinstance(identity, dict) else None
    version = {} if version is None else version
    if not isinstance(version, dict):
        raise JobError(400, f"solver.version: expected an object such as {{'graph_id': ...}}, got {version!r:.60}")
    graph_id = version.get("graph_id")
    if graph_id not in (None, solver.graph_id):
        raise JobError(404, f"solver {name!r} has no working graph {graph_id!r:.60}")
    problem_type = job.get("type")
    if problem_type not in ("ising", "qubo"):
        raise JobError(400, f"problem type {problem_type!r:.60} not supported; use 'ising' or 'qubo'")
    params = job.get("params") or {}
    if not isinstance(params, dict) or not isinstance(job.get("data") or {}, dict):
        raise JobError(400, "params and data: each must be a JSON object")
    if not isinstance(job.get("label"), (str, type(None))):
        raise JobError(400, f"label: expected a string, got {job['label']!r:.60}")
    props = solver.properties
    try:
        decoded = qp.decode_problem(job.get("data") or {}, solver.couplers, solver.qubits.shape[0])
        check_parameters(params, props)
        if decoded.qubits.size == 0:
            raise ValueError("data: the problem uses no qubits")
        local = np.full(solver.qubits.shape[0], -1, dtype=np.int64)
        local[decoded.qubits] = np.arange(decoded.qubits.shape[0])
        edges = local[solver.couplers[decoded.couplers]]
        if problem_type == "ising":
            h, J = decoded.linear, decoded.quadratic
        else:  # QUBO x^T Q x is the binary model with bias -Q_ii and weight -Q_ij
            h, _, J, _ = BoltzmannMachine(-decoded.linear, edges, -decoded.quadratic).to_ising()
        _check_energy_range(decoded.linear, decoded.quadratic, h, J)
        if not params.get("auto_scale", True):
            violations = range_violations(h, J, props)
            if violations:
                raise ValueError(f"{' and '.join(violations)} with auto_scale off")
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise JobError(400, str(exc)) from None
    return Problem(solver, problem_type, params, decoded.qubits, edges, decoded.linear, decoded.quadratic, h, J)


def _check_energy_range(*biases) -> None:
    """Energies sum_i |h_i| + sum_k |J_k| at most must stay within float64 (each bias alone may
    be as large as a float: the emulator scales before it multiplies by beta)."""
    with np.errstate(over="ignore"):
        if not all(np.isfinite(np.abs(b).sum()) for b in biases):
            raise ValueError("lin/quad: the energies of this problem overflow float64 (sum of |biases| is inf)")
