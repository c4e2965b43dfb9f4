"""Negative-phase samples from a D-Wave QPU through dwave-cloud-client (paper 001, Sec. II-III, App. B-C).

The prior is a BoltzmannMachine on the solver's working graph (unit k is qubit topology.nodes[k]).
For p(z) = exp(-E(z))/Z the QPU is programmed with the Ising form of E divided by beta_eff
(Eq. 17: b = beta_eff h, W = beta_eff J), since it samples p(s) ~ exp(-beta_eff H(s)); auto_scale
is off and values beyond h_range / j_range are clipped with a ClippingWarning. Each call submits
`num_spin_reversals` gauge-transformed copies (h_i -> g_i h_i, J_ij -> g_i g_j J_ij, g in {+-1}^n;
App. B: 5 x 200 reads) and multiplies the returned spins by g. Transient faults (timeouts, 429,
5xx, FAILED problems, short answers) are retried with exponential backoff a bounded number of
times; then QPUSamplingError names the problem ids. A result is complete or an error, never partial.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .._validation import edge_array, positive_float, positive_int, seed_value
from ..graphs import Topology
from ..models import BoltzmannMachine
from .hardware import (PauseAndQuench, check_timing, max_num_reads, range_violations, validate_anneal_schedule,
                       working_graph)

__all__ = ["QPUSampler", "QPUSamplingError", "ClippingWarning"]

# Parameters the sampler sets itself; they cannot be passed through solver_params.
_RESERVED = ("num_reads", "auto_scale", "anneal_schedule", "label")
_MAX_BACKOFF = 60.0


class QPUSamplingError(RuntimeError):
    """A QPU problem failed for good (after retries for transient faults); `problem_ids` lists the
    ids of every attempt the Solver API accepted."""

    def __init__(self, message: str, problem_ids):
        super().__init__(message)
        self.problem_ids = list(problem_ids)


class ClippingWarning(UserWarning):
    """Hardware biases or couplings beyond the solver's h_range / j_range were clipped."""


class _AnswerError(Exception):
    """An answer that came late, short or malformed (a transient fault)."""


@dataclass
class _Job:
    """One spin-reversal transform: its gauge, its reads, and its current attempt."""

    gauge: np.ndarray
    num_reads: int
    future: object = None
    submitted_at: float = 0.0
    attempts: int = 0
    problem_ids: list = field(default_factory=list)


class QPUSampler:
    """Boltzmann samples of a BoltzmannMachine from a D-Wave QPU solver (see module docstring).

    solver: a solver name, a dict of feature filters (Client.get_solver(**filters)) or None (the
    configured or first QPU solver). client: a dwave.cloud.Client to use (not closed by the
    sampler); without one, a QPU client is made by Client.from_config(**client_options), i.e. from
    the config file, DWAVE_API_TOKEN / DWAVE_API_ENDPOINT or the options, and closed by close().
    topology: the graph of the models to sample (default: the whole working graph); num_samples:
    the default batch (App. B: 1000 = 5 transforms x 200 reads).
    beta_eff: the effective inverse temperature (> 0); beta_update: None (fixed), or a callable
    (hardware_model, samples, beta_eff) -> beta_eff run after each batch, e.g. PseudoLikelihood() or
    AppendixC(lr). anneal_schedule: None (the solver's default anneal), [[t, s], ...] points or a
    PauseAndQuench recipe (App. B). solver_params: further solver parameters (e.g.
    readout_thermalization). timeout: seconds each problem may take from submission to answer;
    max_retries / retry_backoff: retries of transient faults, sleeping retry_backoff * 2**k s.
    """

    def __init__(self, solver=None, *, client=None, client_options=None, topology: Topology | None = None,
                 num_samples: int = 1000, beta_eff: float = 1.0, beta_update=None, num_spin_reversals: int = 5,
                 anneal_schedule=None, solver_params=None, timeout: float = 300.0, max_retries: int = 3,
                 retry_backoff: float = 1.0, seed=None, label: str = "qvae-core"):
        self.num_samples = positive_int(num_samples, "num_samples")
        self.beta_eff = beta_eff
        if beta_update is not None and not callable(beta_update):
            raise ValueError(f"beta_update: expected None or a callable, got {beta_update!r}")
        self.beta_update = beta_update
        self.num_spin_reversals = positive_int(num_spin_reversals, "num_spin_reversals")
        self.timeout = positive_float(timeout, "timeout")
        self.max_retries = positive_int(max_retries, "max_retries", minimum=0)
        self.retry_backoff = positive_float(retry_backoff, "retry_backoff", allow_zero=True)
        if solver is not None and not isinstance(solver, (str, Mapping)):
            raise ValueError(f"solver: expected a name, a dict of feature filters or None, got {solver!r}")
        if client is not None and client_options:
            raise ValueError("client_options: only used when no client is given")
        if client_options is not None and not isinstance(client_options, Mapping):
            raise ValueError(f"client_options: expected a mapping of Client.from_config options, got {client_options!r}")
        self.label = str(label)
        self._rng = np.random.default_rng(seed_value(seed))
        self.last_problem_ids: list = []
        self.last_hardware_model: BoltzmannMachine | None = None

        self._owns_client = client is None
        if client is None:
            from dwave.cloud import Client

            # No client polling_timeout: the sampler's own deadline (from submission, _read) governs
            # and cancels the problem; a client timeout would race it and leave the problem running.
            client = Client.from_config(**{"client": "qpu", **(client_options or {})})
        self.client = client
        try:
            self.solver = self._get_solver(solver)
            self._params = self._solver_params(solver_params, anneal_schedule)
            self.topology = topology
        except BaseException:
            self.close()
            raise
        props = self.solver.properties
        self._reads_range = (int(props["num_reads_range"][0]), max_num_reads(self._params, props))

    # ---- set-up --------------------------------------------------------------------------------

    @property
    def beta_eff(self) -> float:
        return self._beta_eff

    @beta_eff.setter
    def beta_eff(self, value) -> None:
        self._beta_eff = positive_float(value, "beta_eff")

    def _get_solver(self, solver):
        if solver is None:
            found = self.client.get_solver()
        elif isinstance(solver, str):
            found = self.client.get_solver(name=solver)
        else:
            found = self.client.get_solver(**solver)
        if "qubits" not in found.properties or "couplers" not in found.properties:
            raise ValueError(f"solver: {found.name!r} is not a structured (QPU) solver")
        return found

    def _solver_params(self, solver_params, anneal_schedule) -> dict:
        params = dict(solver_params or {})
        accepted = self.solver.parameters
        for key in params:
            if key in _RESERVED:
                raise ValueError(f"solver_params: {key!r} is set by the sampler")
            if key not in accepted and not key.startswith("x_"):
                raise ValueError(f"solver_params: {key!r} is not a parameter of solver {self.solver.name!r}")
        props = self.solver.properties
        if anneal_schedule is not None:
            points = anneal_schedule.points(props) if isinstance(anneal_schedule, PauseAndQuench) else anneal_schedule
            params["anneal_schedule"] = validate_anneal_schedule(points, props)
        try:
            check_timing(params, props)
        except ValueError as exc:
            raise ValueError(f"solver_params: {exc}") from None
        if "answer_mode" in accepted:
            params.setdefault("answer_mode", "raw")  # reads in the order they were taken
        params["auto_scale"] = False
        return params

    @property
    def topology(self) -> Topology:
        """The graph of the models sampled (unit k is qubit topology.nodes[k])."""
        return self._topology

    @topology.setter
    def topology(self, topology: Topology | None) -> None:
        """Sample models on another subgraph of the working graph (None: all of it), e.g. the
        physical graph of a minor embedding found on it (qvae_core.embedding)."""
        self._topology = self._check_topology(topology)
        self._labels = self._topology.nodes
        self._edge_keys = _edge_keys(self._topology.edges, self._topology.num_units)

    def _check_topology(self, topology) -> Topology:
        graph = working_graph(self.solver)
        if topology is None:
            return graph
        if not isinstance(topology, Topology):
            raise ValueError(f"topology: expected a qvae_core.graphs.Topology, got {type(topology).__name__}")
        nodes = np.asarray(topology.nodes, dtype=np.int64)
        missing = np.setdiff1d(nodes, graph.nodes)
        if missing.size or np.unique(nodes).size != nodes.size:
            raise ValueError(f"topology: nodes must be distinct active qubits; not active: {missing[:10].tolist()}")
        edges = edge_array(topology.edges, "edges", nodes.shape[0])
        pairs = nodes[edges]
        position = np.searchsorted(graph.nodes, pairs)
        if not np.all(np.isin(_edge_keys(position, graph.num_units), _edge_keys(graph.edges, graph.num_units))):
            raise ValueError("topology: every edge must be a coupler of the solver's working graph")
        return topology._replace(nodes=nodes, edges=edges)  # same positions: its colours still fit

    # ---- sampling ------------------------------------------------------------------------------

    def sample(self, model: BoltzmannMachine, num_samples: int | None = None) -> np.ndarray:
        """num_samples (default self.num_samples) states of `model`, (num_samples, n) uint8 in unit order.

        This is the negative-phase contract of qvae_core.dvae samplers (with state_dict below).
        Reads are split evenly over the spin-reversal transforms; rows come grouped by transform.
        Afterwards `last_problem_ids` and `last_hardware_model` (the Ising problem programmed,
        un-gauged, as a BoltzmannMachine) describe the batch, and beta_update (if any) has run.
        """
        self._check_model(model)
        num_samples = self.num_samples if num_samples is None else positive_int(num_samples, "num_samples")
        transforms = self.num_spin_reversals
        lo, hi = self._reads_range
        reads = [num_samples // transforms + (k < num_samples % transforms) for k in range(transforms)]
        if reads[-1] < lo or reads[0] > hi:
            raise ValueError(
                f"num_samples: {num_samples} samples over {transforms} spin-reversal transforms need "
                f"{reads[-1]}-{reads[0]} reads per problem; solver {self.solver.name!r} allows {lo} to {hi} "
                f"with these parameters"
            )
        h, edges, J, _ = model.to_ising()
        h, J = self._clip(h / self.beta_eff, J / self.beta_eff)
        hardware_model, _ = BoltzmannMachine.from_ising(h, edges, J)
        gauges = self._rng.choice(np.array([-1, 1], dtype=np.int8), size=(transforms, model.num_units))
        jobs = [_Job(gauge, r) for gauge, r in zip(gauges, reads)]
        problem = (h, edges, J, list(map(tuple, self._labels[edges].tolist())))
        try:
            for job in jobs:
                self._submit(job, problem)
            samples = np.concatenate([self._collect(k, job, problem) for k, job in enumerate(jobs)])
        except BaseException:
            for job in jobs:
                if job.future is not None and not job.future.done():
                    job.future.cancel()
            raise
        self.last_problem_ids = [pid for job in jobs for pid in job.problem_ids]
        self.last_hardware_model = hardware_model
        if self.beta_update is not None:
            updated = self.beta_update(hardware_model, samples, self.beta_eff)
            try:
                self.beta_eff = updated
            except ValueError:  # e.g. an App. C step too large for the learning rate: keep the batch
                warnings.warn(f"beta_update returned {updated!r}, not a positive beta_eff; kept "
                              f"beta_eff = {self.beta_eff:.4g}", RuntimeWarning, stacklevel=2)
        return samples

    def _check_model(self, model) -> None:
        if not isinstance(model, BoltzmannMachine):
            raise ValueError(
                f"model: expected a BoltzmannMachine on the sampler's topology, got {type(model).__name__}"
            )
        n = self.topology.num_units
        if model.num_units != n:
            raise ValueError(f"model: has {model.num_units} units, the sampler's topology has {n} qubits")
        if not np.all(np.isin(_edge_keys(model.edges, n), self._edge_keys)):
            raise ValueError("model: every edge must be an edge of the sampler's topology (a coupler)")

    def _clip(self, h: np.ndarray, J: np.ndarray):
        props = self.solver.properties
        violations = range_violations(h, J, props)
        if violations:
            warnings.warn(f"clipped {' and '.join(violations)}: model / beta_eff (beta_eff = {self.beta_eff:.4g}) "
                          f"exceeds the solver's ranges", ClippingWarning, stacklevel=3)
        return np.clip(h, *props["h_range"]), np.clip(J, *props["j_range"])

    def _submit(self, job: _Job, problem) -> None:
        """Submit the gauge-transformed problem (h, edges, J, coupler label pairs) for one job."""
        h, edges, J, pairs = problem
        g = job.gauge
        linear = dict(zip(self._labels.tolist(), (g * h).tolist()))
        quadratic = dict(zip(pairs, (g[edges[:, 0]] * g[edges[:, 1]] * J).tolist()))
        job.future = self.solver.sample_ising(linear, quadratic, label=self.label, num_reads=job.num_reads,
                                              **self._params)
        job.submitted_at = time.monotonic()
        job.attempts += 1

    def _collect(self, k: int, job: _Job, problem) -> np.ndarray:
        """Un-gauged states of one transform, resubmitting after transient faults."""
        while True:
            try:
                return self._read(job)
            except Exception as exc:
                transient = _is_transient(exc, job.future)
                if not transient or job.attempts > self.max_retries:
                    kind = "after retries of transient faults" if transient else "with a non-retryable error"
                    raise QPUSamplingError(
                        f"spin-reversal transform {k + 1}/{self.num_spin_reversals} failed {kind} "
                        f"({job.attempts} attempt(s)): {type(exc).__name__}: {exc}; problem ids: "
                        f"{', '.join(job.problem_ids) or 'none assigned'}",
                        job.problem_ids,
                    ) from exc
                time.sleep(min(self.retry_backoff * 2 ** (job.attempts - 1), _MAX_BACKOFF))
                self._submit(job, problem)

    def _read(self, job: _Job) -> np.ndarray:
        future = job.future
        finished = future.wait(max(job.submitted_at + self.timeout - time.monotonic(), 0.0))
        if future.id is not None:
            job.problem_ids.append(future.id)
        if not finished:
            future.cancel()
            raise _AnswerError(f"no answer within timeout = {self.timeout} s")
        solutions = np.asarray(future.samples, dtype=np.int8)  # raises the problem's error, if any
        counts = np.asarray(future.num_occurrences, dtype=np.int64)
        missing = np.setdiff1d(self._labels, np.asarray(future.variables, dtype=np.int64))
        if missing.size or solutions.ndim != 2 or solutions.shape[1] <= self._labels.max():
            raise _AnswerError(f"answer of problem {future.id} lacks qubits {missing[:10].tolist()}")
        spins = solutions[:, self._labels]
        if counts.shape != (spins.shape[0],) or counts.min(initial=1) < 1 or counts.sum() != job.num_reads:
            raise _AnswerError(f"answer of problem {future.id} holds {counts.sum()} reads, {job.num_reads} were asked")
        if not np.all(np.abs(spins) == 1):
            raise _AnswerError(f"answer of problem {future.id} has spins other than +-1")
        return (np.repeat(spins * job.gauge, counts, axis=0) > 0).astype(np.uint8)

    def state_dict(self) -> dict:
        """What a training checkpoint keeps: the current beta_eff."""
        return {"beta_eff": self.beta_eff}

    def load_state_dict(self, state: dict) -> None:
        self.beta_eff = state["beta_eff"]

    # ---- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the client if the sampler made it (without waiting for abandoned problems)."""
        if self._owns_client and self.client is not None:
            self.client.close(wait=False)
            self.client = None

    def __enter__(self) -> QPUSampler:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"QPUSampler(solver={self.solver.name!r}, qubits={self.topology.num_units}, "
                f"beta_eff={self.beta_eff:.4g}, num_spin_reversals={self.num_spin_reversals})")


def _is_transient(exc: BaseException, future) -> bool:
    """Timeouts, rate limits (429), server errors (5xx), FAILED problems and bad answers."""
    import requests
    from dwave.cloud.exceptions import PollingTimeout, RequestTimeout

    if isinstance(exc, (_AnswerError, PollingTimeout, RequestTimeout, requests.exceptions.ConnectionError,
                        requests.exceptions.Timeout)):
        return True
    if getattr(future, "remote_status", None) == "FAILED":
        return True
    code = getattr(exc, "error_code", None)
    return isinstance(code, int) and (code == 429 or 500 <= code < 600)


def _edge_keys(edges: np.ndarray, n: int) -> np.ndarray:
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    return edges.min(axis=1) * n + edges.max(axis=1)

