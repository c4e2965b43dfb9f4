"""A local D-Wave Solver API (SAPI v3) server for offline development and tests.

It serves the subset of SAPI that dwave-cloud-client uses, with the media types the client checks:

    GET    solvers/remote/[?filter=]          solver-definition-list+json
    GET    solvers/remote/{name}[?filter=]    solver-definition+json
    POST   problems/                          problems+json   (JSON jobs, optionally deflate-compressed)
    GET    problems/?id=a,b[&timeout=s]       problems+json   (long polling)
    DELETE problems/  (JSON list of ids)      problems+json   (cancel)
    GET    problems/{id}/                     problem+json    (status and answer)
    DELETE problems/{id}/                     problem+json    (cancel)
    GET    problems/{id}/info | answer | messages

Problems are checked as a QPU checks them (parameters, num_reads, anneal schedule, h/J ranges when
auto_scale is off) and answered with Boltzmann samples of the submitted Ising problem H at inverse
temperature `beta`, p(s) ~ exp(-beta H(s)) (after auto-scaling, if on), drawn by independent
block-Gibbs chains (one per read, `sweeps` sweeps each). Faults can be injected (`inject`).
The server binds to loopback only.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import queue
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np

from .._validation import finite_array, positive_float, positive_int, seed_value
from ..models import BoltzmannMachine
from ..samplers import GibbsSampler
from . import qp
from .hardware import anneal_time, check_timing, max_num_reads, range_violations, validate_anneal_schedule
from .solvers import qpu_solver

__all__ = ["SAPIServer", "FAULTS", "default_solvers"]

SAPI_PATH = "/sapi/v2/"
_VERSION = "3.0.0"
_MEDIA = {
    "solver-list": "application/vnd.dwave.sapi.solver-definition-list+json",
    "solver": "application/vnd.dwave.sapi.solver-definition+json",
    "problems": "application/vnd.dwave.sapi.problems+json",
    "problem": "application/vnd.dwave.sapi.problem+json",
    "info": "application/vnd.dwave.sapi.problem-data+json",
    "answer": "application/vnd.dwave.sapi.problem-answer+json",
    "messages": "application/vnd.dwave.sapi.problem-message+json",
}
_LOOPBACK = ("127.0.0.1", "localhost")
_TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
_MAX_BODY = 256 * 2**20

# Injectable faults: HTTP errors answered instead of the next requests of one kind, or problem
# outcomes applied to the next problems submitted.
FAULTS = {
    "rate-limit": "429 on problem submission",
    "server-error": "503 on problem submission",
    "poll-error": "500 on status polling",
    "failed": "problem ends FAILED",
    "slow": "answer withheld for `delay` seconds (status IN_PROGRESS)",
    "truncated": "answer holds only half of the reads",
}


def default_solvers(inactive_fraction: float = 0.0, seed=0) -> list[dict]:
    """One solver per topology at the sizes of D-Wave 2000Q, Advantage and Advantage2 systems:
    Chimera C(16), Pegasus P(16), Zephyr Z(6)."""
    shapes = (("chimera", 16), ("pegasus", 16), ("zephyr", 6))
    return [qpu_solver(topology, shape, inactive_fraction=inactive_fraction, seed=seed_value(seed) + k)
            for k, (topology, shape) in enumerate(shapes)]


def _seconds(text: str) -> float:
    """A long poll's timeout query value: a finite number (NaN would never expire)."""
    try:
        value = float(text)
    except ValueError:
        raise _HTTPError(400, f"timeout: not a number: {text!r}") from None
    if not math.isfinite(value):
        raise _HTTPError(400, f"timeout: must be a finite number of seconds, got {text!r}")
    return value


class _HTTPError(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class _Solver:
    definition: dict
    qubits: np.ndarray  # working qubit labels, in properties["qubits"] order
    couplers: np.ndarray  # (m, 2) positions into qubits, in properties["couplers"] order

    @classmethod
    def from_definition(cls, definition: dict) -> _Solver:
        props = definition["properties"]
        qubits = np.asarray(props["qubits"], dtype=np.int64)
        position = {int(v): k for k, v in enumerate(qubits)}
        couplers = np.array([[position[a], position[b]] for a, b in props["couplers"]], dtype=np.int64)
        return cls(definition, qubits, couplers.reshape(-1, 2))

    @property
    def name(self) -> str:
        return self.definition["identity"]["name"]

    @property
    def properties(self) -> dict:
        return self.definition["properties"]


@dataclass
class _Problem:
    id: str
    solver: _Solver
    type: str
    label: str | None
    params: dict
    data: dict
    decoded: qp.QPProblem
    edges: np.ndarray  # couplers as positions into decoded.qubits
    h: np.ndarray  # the Ising form (QUBO problems converted)
    J: np.ndarray
    seed: int
    submitted_on: datetime
    fault: str | None = None
    delay: float = 0.0
    status: str = "PENDING"
    solved_on: datetime | None = None
    answer: dict | None = None
    error_message: str | None = None
    ready_at: float = 0.0  # monotonic time before which a finished answer is withheld

    def visible_status(self, now: float) -> str:
        if self.status in ("COMPLETED", "FAILED") and now < self.ready_at:
            return "IN_PROGRESS"
        return self.status

    def status_document(self, now: float, *, with_answer: bool = False) -> dict:
        status = self.visible_status(now)
        doc = {
            "id": self.id,
            "type": self.type,
            "solver": self.solver.definition["identity"],
            "label": self.label,
            "status": status,
            "submitted_on": _iso(self.submitted_on),
        }
        if status in _TERMINAL and self.solved_on is not None:
            doc["solved_on"] = _iso(self.solved_on)
        if status == "FAILED":
            doc["error_message"] = self.error_message
        if with_answer and status == "COMPLETED":
            doc["answer"] = self.answer
        return doc


@dataclass
class _Faults:
    pending: dict = field(default_factory=dict)  # kind -> [(remaining count, delay)]
    served: dict = field(default_factory=dict)  # kind -> count served

    def take(self, kind: str):
        """(True, delay) and one use consumed if a fault of this kind is pending."""
        queue_ = self.pending.get(kind)
        if not queue_:
            return False, 0.0
        count, delay = queue_[0]
        if count == 1:
            queue_.pop(0)
        else:
            queue_[0] = (count - 1, delay)
        self.served[kind] = self.served.get(kind, 0) + 1
        return True, delay


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _now() -> datetime:
    return datetime.now(timezone.utc)


MAX_BETA = 1e4  # |h|, |J| of a few units times beta stay within the models' MAX_PARAMETER (1e6)


class SAPIServer:
    """Local SAPI server; use as a context manager (background thread) or `serve_forever()`.

    solvers: definitions from `qpu_solver` (default: `default_solvers()`); beta: inverse
    temperature of the answers; sweeps: block-Gibbs sweeps per read; seed: makes answers
    reproducible for a given submission order; token: the X-Auth-Token to require (None accepts
    any non-empty token); port 0 picks a free port.
    """

    def __init__(self, solvers=None, *, beta: float = 2.0, sweeps: int = 1000, seed=None, token: str | None = None,
                 host: str = "127.0.0.1", port: int = 0, max_poll_wait: float = 30.0):
        if host not in _LOOPBACK:
            raise ValueError(f"host: the local SAPI server binds to loopback only {_LOOPBACK}, got {host!r}")
        self.beta = positive_float(beta, "beta")
        if self.beta > MAX_BETA:
            raise ValueError(f"beta: at most {MAX_BETA:g} (beta times the solver's ranges must stay a model "
                             f"parameter), got {self.beta:g}")
        self.sweeps = positive_int(sweeps, "sweeps")
        self.seed = seed_value(seed)
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError(f"token: expected a non-empty string or None (any token), got {token!r}")
        self.token = token
        if positive_int(port, "port", minimum=0) > 65535:
            raise ValueError(f"port: must be in [0, 65535], got {port}")
        self.max_poll_wait = positive_float(max_poll_wait, "max_poll_wait")
        if isinstance(solvers, dict):
            raise ValueError("solvers: expected a list of solver definitions, got a single one")
        definitions = default_solvers() if solvers is None else list(solvers)
        if not definitions:
            raise ValueError("solvers: need at least one solver definition")
        self._solvers = {d["identity"]["name"]: _Solver.from_definition(d) for d in definitions}
        if len(self._solvers) != len(definitions):
            raise ValueError("solvers: names must be distinct")
        self._problems: dict[str, _Problem] = {}
        self._faults = _Faults()
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._closing = False
        self._work: queue.Queue = queue.Queue()
        self.requests: dict[str, int] = {}  # counts by route, e.g. "POST problems"
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._serving: threading.Thread | None = None  # the background thread of start()
        self._worker = threading.Thread(target=self._work_loop, name="sapi-worker", daemon=True)
        self._worker.start()

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def solvers(self) -> list[dict]:
        """The solver definitions served."""
        return [s.definition for s in self._solvers.values()]

    @property
    def address(self) -> tuple:
        return self._httpd.server_address[:2]

    @property
    def endpoint(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}{SAPI_PATH}"

    def client_options(self, **overrides) -> dict:
        """Options for dwave.cloud.Client(...) / Client.from_config(...) that reach this server only:
        no config file, no solver cache on disk, short long-polls and timeouts."""
        options = dict(
            endpoint=self.endpoint,
            token=self.token or "local-token",
            config_file=False,
            cache_enabled=False,
            poll_wait_time=2,
            request_timeout=30.0,
        )
        options.update(overrides)
        return options

    def start(self) -> SAPIServer:
        self._serving = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                         name="sapi-http", daemon=True)
        self._serving.start()
        return self

    def serve_forever(self) -> None:
        try:
            self._httpd.serve_forever()
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving: wake long polls, stop the worker, close the socket."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        if self._serving is not None:
            self._httpd.shutdown()
        self._httpd.server_close()
        self._work.put(None)
        self._worker.join(timeout=10)

    def __enter__(self) -> SAPIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- faults and inspection ---------------------------------------------------------------

    def inject(self, fault: str, count: int = 1, *, delay: float = 0.0) -> None:
        """Apply `fault` (a key of FAULTS) to the next `count` requests or problems of its kind."""
        if fault not in FAULTS:
            raise ValueError(f"fault: expected one of {sorted(FAULTS)}, got {fault!r}")
        count = positive_int(count, "count")
        delay = float(finite_array(delay, "delay", ndim=0))
        if delay < 0 or (fault == "slow") != (delay > 0):
            raise ValueError(f"delay: must be > 0 for 'slow' faults and 0 otherwise, got {delay}")
        with self._cond:
            self._faults.pending.setdefault(fault, []).append((count, delay))

    @property
    def faults_served(self) -> dict:
        with self._cond:
            return dict(self._faults.served)

    def problems(self) -> list[dict]:
        """Every problem received, oldest first: id, solver, status, params, decoded data."""
        now = time.monotonic()
        with self._cond:
            return [
                {"id": p.id, "solver": p.solver.name, "status": p.visible_status(now), "params": p.params,
                 "labels": p.solver.qubits[p.decoded.qubits], "linear": p.decoded.linear,
                 "quadratic": p.decoded.quadratic, "type": p.type}
                for p in self._problems.values()
            ]

    # ---- solving -------------------------------------------------------------------------------

    def _work_loop(self) -> None:
        while (problem := self._work.get()) is not None:
            with self._cond:
                if problem.status == "CANCELLED":
                    continue
                problem.status = "IN_PROGRESS"
            try:
                if problem.fault == "failed":
                    raise RuntimeError("injected failure: the QPU could not run this problem")
                answer, error = self._solve(problem), None
            except Exception as exc:  # a failed problem, reported to the client as SAPI does
                answer, error = None, str(exc)
            with self._cond:
                if problem.status != "CANCELLED":
                    problem.status = "FAILED" if error else "COMPLETED"
                    problem.answer, problem.error_message = answer, error
                    problem.solved_on = _now()
                    problem.ready_at = time.monotonic() + problem.delay if problem.delay else 0.0
                self._cond.notify_all()

    def _solve(self, problem: _Problem) -> dict:
        """Boltzmann samples at `beta` of the problem's Ising form, encoded as a qp answer."""
        props = problem.solver.properties
        decoded, edges, h, J = problem.decoded, problem.edges, problem.h, problem.J
        scale = 1.0
        if problem.params.get("auto_scale", True):
            scale = max(_autoscale_ratio(h, props["h_range"]), _autoscale_ratio(J, props["j_range"])) or 1.0
        model, _ = BoltzmannMachine.from_ising(self.beta * h / scale, edges, self.beta * J / scale)
        num_reads = int(problem.params.get("num_reads", 1))
        z = GibbsSampler(model, num_reads, seed=problem.seed).run(self.sweeps)
        if problem.type == "ising":
            s = 2.0 * z - 1.0
            energies = s @ h + (s[:, edges[:, 0]] * s[:, edges[:, 1]]) @ J
        else:
            x = z.astype(float)
            energies = x @ decoded.linear + (x[:, edges[:, 0]] * x[:, edges[:, 1]]) @ decoded.quadratic
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
        if problem.fault == "truncated":
            keep = np.cumsum(counts) <= max(num_reads // 2, 1)
            z, energies, counts = z[keep], energies[keep], counts[keep]
        per_sample = anneal_time(problem.params, props)
        readout, delay = 100.0, 20.0
        sampling = num_reads * (per_sample + readout + delay)
        timing = {
            "qpu_anneal_time_per_sample": per_sample,
            "qpu_readout_time_per_sample": readout,
            "qpu_delay_time_per_sample": delay,
            "qpu_sampling_time": sampling,
            "qpu_programming_time": 15000.0,
            "qpu_access_overhead_time": 0.0,
            "qpu_access_time": 15000.0 + sampling,
            "post_processing_overhead_time": 0.0,
            "total_post_processing_time": 0.0,
        }
        labels = problem.solver.qubits[decoded.qubits]
        order = np.argsort(labels)  # active_variables are listed in increasing label order
        return qp.encode_answer(z[:, order], labels[order], energies, counts, props["num_qubits"], timing)

    # ---- request handling ------------------------------------------------------------------------

    def _submit(self, jobs: list) -> list:
        documents = []
        for job in jobs:
            try:
                problem = self._accept(job)
            except _HTTPError as exc:
                documents.append({"error_code": exc.code, "error_msg": str(exc)})
                continue
            with self._cond:
                problem.fault, problem.delay = self._problem_fault()
                self._problems[problem.id] = problem
                documents.append(problem.status_document(time.monotonic()))
            self._work.put(problem)
        return documents

    def _problem_fault(self):
        for kind in ("failed", "slow", "truncated"):
            taken, delay = self._faults.take(kind)
            if taken:
                return kind, delay
        return None, 0.0

    def _accept(self, job) -> _Problem:
        """Validate one submitted job as a QPU would; raises _HTTPError(400/404) if it is refused."""
        if not isinstance(job, dict):
            raise _HTTPError(400, "each job must be a JSON object")
        identity = job.get("solver") or {}
        name = identity.get("name") if isinstance(identity, dict) else identity
        if not isinstance(name, str):
            raise _HTTPError(400, f"solver: expected a name or an identity object, got {identity!r}")
        solver = self._solvers.get(name)
        if solver is None:
            raise _HTTPError(404, f"solver {name!r} not found")
        graph_id = (identity.get("version") or {}).get("graph_id") if isinstance(identity, dict) else None
        if graph_id not in (None, solver.definition["identity"]["version"]["graph_id"]):
            raise _HTTPError(404, f"solver {name!r} has no working graph {graph_id!r}")
        problem_type = job.get("type")
        if problem_type not in ("ising", "qubo"):
            raise _HTTPError(400, f"problem type {problem_type!r} not supported; use 'ising' or 'qubo'")
        params = job.get("params") or {}
        if not isinstance(params, dict) or not isinstance(job.get("data") or {}, dict):
            raise _HTTPError(400, "params and data: each must be a JSON object")
        props = solver.properties
        try:
            decoded = qp.decode_problem(job.get("data") or {}, solver.couplers, solver.qubits.shape[0])
            self._check_params(params, props)
            if decoded.qubits.size == 0:
                raise ValueError("data: the problem uses no qubits")
            local = np.full(solver.qubits.shape[0], -1, dtype=np.int64)
            local[decoded.qubits] = np.arange(decoded.qubits.shape[0])
            edges = local[solver.couplers[decoded.couplers]]
            if problem_type == "ising":
                h, J = decoded.linear, decoded.quadratic
            else:  # QUBO x^T Q x is the binary model with bias -Q_ii and weight -Q_ij
                h, _, J, _ = BoltzmannMachine(-decoded.linear, edges, -decoded.quadratic).to_ising()
            if not params.get("auto_scale", True):
                violations = range_violations(h, J, props)
                if violations:
                    raise ValueError(f"{' and '.join(violations)} with auto_scale off")
        except (ValueError, TypeError, KeyError) as exc:
            raise _HTTPError(400, str(exc)) from None
        index = next(self._counter)
        seed = int(np.random.SeedSequence([self.seed, index]).generate_state(1, np.uint64)[0])
        return _Problem(str(uuid.uuid4()), solver, problem_type, job.get("label"), params, job["data"], decoded,
                        edges, h, J, seed, _now())

    @staticmethod
    def _check_params(params: dict, props: dict) -> None:
        unknown = [k for k in params if k not in props["parameters"]]  # experimental x_* ones too
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} for this solver")
        check_timing(params, props)
        if "anneal_schedule" in params:
            validate_anneal_schedule(params["anneal_schedule"], props)
        num_reads = params.get("num_reads", 1)
        lo, _ = props["num_reads_range"]
        hi = max_num_reads(params, props)
        if isinstance(num_reads, bool) or not isinstance(num_reads, int) or not lo <= num_reads <= hi:
            raise ValueError(f"num_reads: must be an integer in [{lo}, {hi}] for these parameters, got {num_reads!r}")
        if params.get("answer_mode", "histogram") not in ("raw", "histogram"):
            raise ValueError(f"answer_mode: must be 'raw' or 'histogram', got {params['answer_mode']!r}")
        if "max_answers" in params and not (isinstance(params["max_answers"], int) and params["max_answers"] >= 1):
            raise ValueError(f"max_answers: must be a positive integer, got {params['max_answers']!r}")

    def _poll(self, ids: list, timeout: float) -> list:
        """Statuses of the known problems among `ids`, once one is finished or `timeout` has passed."""
        deadline = time.monotonic() + min(max(timeout, 0.0), self.max_poll_wait)
        with self._cond:
            while True:
                now = time.monotonic()
                found = [self._problems[i] for i in ids if i in self._problems]
                if self._closing or now >= deadline or any(p.visible_status(now) in _TERMINAL for p in found):
                    return [p.status_document(now) for p in found]
                wake = min([deadline] + [p.ready_at for p in found if p.ready_at > now])
                self._cond.wait(wake - now)

    def _cancel(self, problem_id: str) -> dict:
        with self._cond:
            problem = self._problems.get(problem_id)
            if problem is None:
                return {"error_code": 404, "error_msg": f"problem {problem_id!r} not found"}
            now = time.monotonic()
            if problem.visible_status(now) in _TERMINAL:
                return {"error_code": 409, "error_msg": "Problem has been finished."}
            problem.status, problem.answer, problem.solved_on = "CANCELLED", None, _now()
            self._cond.notify_all()
            return problem.status_document(now)

    def _problem(self, problem_id: str) -> _Problem:
        with self._cond:
            problem = self._problems.get(problem_id)
        if problem is None:
            raise _HTTPError(404, f"problem {problem_id!r} not found")
        return problem

    def _handle(self, method: str, path: str, query: dict, body) -> tuple[int, str, object]:
        """(HTTP status, media key, JSON document) for one request."""
        parts = [p for p in path.split("/") if p]
        route = method + " " + "/".join("{id}" if k == 1 and parts[0] == "problems" else p for k, p in enumerate(parts))
        with self._cond:
            self.requests[route] = self.requests.get(route, 0) + 1
        now = time.monotonic()
        if parts[:2] == ["solvers", "remote"] and method == "GET":
            spec = query.get("filter", ["all"])[0]
            if len(parts) == 2:
                return 200, "solver-list", [_filtered(s.definition, spec) for s in self._solvers.values()]
            solver = self._solvers.get("/".join(parts[2:]))
            if solver is None:
                raise _HTTPError(404, f"solver {'/'.join(parts[2:])!r} not found")
            return 200, "solver", _filtered(solver.definition, spec)
        if parts == ["problems"]:
            if method == "POST":
                if self._take_http_fault("rate-limit"):
                    raise _HTTPError(429, "Too many requests: rate limit exceeded (injected)")
                if self._take_http_fault("server-error"):
                    raise _HTTPError(503, "Service unavailable (injected)")
                documents = self._submit(body if isinstance(body, list) else [body])
                return 200, "problems", documents if isinstance(body, list) else documents[0]
            if method == "GET":
                if self._take_http_fault("poll-error"):
                    raise _HTTPError(500, "Internal server error (injected)")
                if "id" not in query:
                    with self._cond:
                        return 200, "problems", [p.status_document(now) for p in self._problems.values()]
                ids = [i for i in query["id"][0].split(",") if i]
                return 200, "problems", self._poll(ids, _seconds(query.get("timeout", ["0"])[0]))
            if method == "DELETE":
                if not isinstance(body, list):
                    raise _HTTPError(400, "expected a JSON list of problem ids")
                return 200, "problems", [self._cancel(str(i)) for i in body]
        if len(parts) in (2, 3) and parts[0] == "problems":
            problem = self._problem(parts[1])
            tail = parts[2] if len(parts) == 3 else None
            if method == "DELETE" and tail is None:
                doc = self._cancel(problem.id)
                if "error_code" in doc:
                    raise _HTTPError(doc["error_code"], doc["error_msg"])
                return 200, "problem", doc
            if method == "GET":
                with self._cond:
                    doc = problem.status_document(now, with_answer=True)
                if tail is None:
                    return 200, "problem", doc
                if tail == "answer":
                    if "answer" not in doc:
                        raise _HTTPError(404, f"problem {problem.id} has no answer (status {doc['status']})")
                    return 200, "answer", {"answer": doc["answer"]}
                if tail == "messages":
                    return 200, "messages", []
                if tail == "info":
                    info = {
                        "id": problem.id, "data": problem.data, "params": problem.params,
                        "metadata": {key: doc.get(key) for key in ("solver", "type", "label", "status",
                                                                   "submitted_on", "solved_on")}
                        | {"submitted_by": "local", "messages": []},
                    }
                    if "answer" in doc:
                        info["answer"] = doc["answer"]
                    return 200, "info", info
        raise _HTTPError(404, f"no route for {method} {path}")

    def _take_http_fault(self, kind: str) -> bool:
        with self._cond:
            return self._faults.take(kind)[0]

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "qvae-core-sapi/0.1"
            timeout = 60  # idle keep-alive connections are closed after this many seconds

            def log_message(self, format, *args):  # quiet; requests are counted in server.requests
                pass

            def do_GET(self):
                self._respond("GET")

            def do_POST(self):
                self._respond("POST")

            def do_DELETE(self):
                self._respond("DELETE")

            def _read_body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks, size = [], 0
                    while (length := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                        size += length
                        if size > _MAX_BODY:
                            raise _HTTPError(413, "request body too large")
                        chunks.append(self.rfile.read(length))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    raw = b"".join(chunks)
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    if length > _MAX_BODY:
                        raise _HTTPError(413, "request body too large")
                    raw = self.rfile.read(length)
                if self.headers.get("Content-Encoding", "").lower() == "deflate":
                    try:
                        raw = zlib.decompress(raw)
                    except zlib.error:
                        raw = zlib.decompress(raw, -zlib.MAX_WBITS)  # raw deflate stream
                return json.loads(raw) if raw else None

            def _respond(self, method):
                url = urlsplit(self.path)
                try:
                    if not url.path.startswith(SAPI_PATH):
                        raise _HTTPError(404, f"not a SAPI path: {url.path}")
                    body = self._read_body()
                    token = self.headers.get("X-Auth-Token")
                    if not token or (server.token is not None and token != server.token):
                        raise _HTTPError(401, "Invalid token or access denied")
                    status, media, document = server._handle(
                        method, url.path[len(SAPI_PATH):], parse_qs(url.query), body
                    )
                    content_type = f"{_MEDIA[media]}; version={_VERSION}"
                except _HTTPError as exc:
                    status, document = exc.code, {"error_code": exc.code, "error_msg": str(exc)}
                    content_type = "application/json"
                except (ValueError, zlib.error) as exc:  # unreadable body
                    status, document = 400, {"error_code": 400, "error_msg": f"bad request: {exc}"}
                    content_type = "application/json"
                except Exception as exc:  # a bug here: answer as SAPI would rather than drop the connection
                    status, document = 500, {"error_code": 500, "error_msg": f"internal error: {exc!r}"}
                    content_type = "application/json"
                payload = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


def _autoscale_ratio(values: np.ndarray, bounds) -> float:
    """Largest ratio of a value to the bound on its side (the QPU's auto_scale factor)."""
    lo, hi = (float(b) for b in bounds)
    if values.size == 0:
        return 0.0
    return float(max(values.max() / hi, values.min() / lo, 0.0))


def _filtered(definition: dict, spec: str) -> dict:
    """Apply a SAPI field filter such as 'all,-status,-avg_load' or 'none,+identity,+status'."""
    result: dict = {}
    for token in (t.strip() for t in spec.split(",")):
        if token == "all":
            result = copy.deepcopy(definition)
        elif token == "none":
            result = {}
        elif token.startswith("-"):
            *head, last = token[1:].split(".")
            node = result
            for key in head:
                node = node.get(key, {})
            node.pop(last, None)
        elif token:
            *head, last = token.lstrip("+").split(".")
            source, target = definition, result
            for key in head:
                source = source.get(key, {})
                target = target.setdefault(key, {})
            if last in source:
                target[last] = copy.deepcopy(source[last])
    return result
