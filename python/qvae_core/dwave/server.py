"""A local D-Wave Solver API (SAPI v3) server for offline development and tests.

It serves the subset of SAPI that dwave-cloud-client uses, with the media types the client checks
(the route table `_ROUTES`):

    GET    solvers/remote/[?filter=]          solver-definition-list+json
    GET    solvers/remote/{name}[?filter=]    solver-definition+json
    POST   problems/                          problems+json   (JSON jobs, optionally deflate-compressed)
    GET    problems/?id=a,b[&timeout=s]       problems+json   (long polling)
    DELETE problems/  (JSON list of ids)      problems+json   (cancel)
    GET    problems/{id}/                     problem+json    (status and answer)
    DELETE problems/{id}/                     problem+json    (cancel)
    GET    problems/{id}/info | answer | messages

Problems are checked as a QPU checks them (jobs.parse_job: parameters, num_reads, anneal schedule,
h/J ranges when auto_scale is off) and answered by the QPU emulator (emulator.QPUEmulator) with
Boltzmann samples of the submitted Ising problem H at inverse temperature `beta`, p(s) ~
exp(-beta H(s)) (after auto-scaling, if on), drawn by independent block-Gibbs chains (one per read,
`sweeps` sweeps each); the problem store (store.ProblemStore) queues them, answers them in order
and serves their statuses. Faults can be injected (`inject`, faults.FAULTS). This module is the HTTP
side: transport, authentication and routing. The server binds to loopback only.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
import threading
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .._validation import positive_float, positive_int, seed_value
from .emulator import QPUEmulator
from .faults import FAULTS, Faults
from .jobs import JobError, parse_job
from .solvers import LocalSolver, qpu_solver
from .store import ProblemStore

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
_MAX_BODY = 256 * 2**20


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


@dataclass(frozen=True)
class _Route:
    """`method` on a path matching `template` (segments; {id} is one segment, {name} the rest of
    the path) is answered by the SAPIServer method `action` with a document of media type `media`."""

    method: str
    template: str
    media: str
    action: str

    @functools.cached_property
    def pattern(self) -> re.Pattern:
        regex = re.escape(self.template).replace(r"\{id\}", "(?P<id>[^/]+)")
        return re.compile(regex.replace(r"\{name\}", "(?P<name>.+)"))

    def match(self, method: str, path: str) -> dict | None:
        """The path's {parameters} if this route answers the request, else None."""
        if method != self.method:
            return None
        found = self.pattern.fullmatch(path)
        return None if found is None else found.groupdict()


_ROUTES = (
    _Route("GET", "solvers/remote", "solver-list", "_list_solvers"),
    _Route("GET", "solvers/remote/{name}", "solver", "_get_solver"),
    _Route("POST", "problems", "problems", "_submit"),
    _Route("GET", "problems", "problems", "_statuses"),
    _Route("DELETE", "problems", "problems", "_cancel_many"),
    _Route("GET", "problems/{id}", "problem", "_status"),
    _Route("DELETE", "problems/{id}", "problem", "_cancel_one"),
    _Route("GET", "problems/{id}/answer", "answer", "_answer"),
    _Route("GET", "problems/{id}/info", "info", "_info"),
    _Route("GET", "problems/{id}/messages", "messages", "_messages"),
)


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
        self.emulator = QPUEmulator(beta=beta, sweeps=sweeps)
        seed = seed_value(seed)
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError(f"token: expected a non-empty string or None (any token), got {token!r}")
        self.token = token
        if positive_int(port, "port", minimum=0) > 65535:
            raise ValueError(f"port: must be in [0, 65535], got {port}")
        max_poll_wait = positive_float(max_poll_wait, "max_poll_wait")
        if isinstance(solvers, dict):
            raise ValueError("solvers: expected a list of solver definitions, got a single one")
        definitions = default_solvers() if solvers is None else list(solvers)
        if not definitions:
            raise ValueError("solvers: need at least one solver definition")
        self._solvers = {d["identity"]["name"]: LocalSolver.from_definition(d) for d in definitions}
        if len(self._solvers) != len(definitions):
            raise ValueError("solvers: names must be distinct")
        self._faults = Faults()
        self._lock = threading.Lock()
        self.requests: dict[str, int] = {}  # counts by route, e.g. "POST problems"
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._serving: threading.Thread | None = None  # the background thread of start()
        self._stopped = False
        self.store = ProblemStore(self.emulator, self._faults, seed=seed, max_poll_wait=max_poll_wait)

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
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self.store.close()
        if self._serving is not None:
            self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> SAPIServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- faults and inspection ---------------------------------------------------------------

    def inject(self, fault: str, count: int = 1, *, delay: float = 0.0) -> None:
        """Apply `fault` (a key of FAULTS) to the next `count` requests or problems of its kind."""
        self._faults.inject(fault, count, delay=delay)

    @property
    def faults_served(self) -> dict:
        return self._faults.served

    def problems(self) -> list[dict]:
        """Every problem received, oldest first: id, solver, status, params, decoded data."""
        return self.store.summaries()

    # ---- routing -------------------------------------------------------------------------------

    def _handle(self, method: str, path: str, query: dict, body) -> tuple[int, str, object]:
        """(HTTP status, media key, JSON document) for one request to `path` (below SAPI_PATH)."""
        path = "/".join(p for p in path.split("/") if p)
        for route in _ROUTES:
            args = route.match(method, path)
            if args is not None:
                break
        else:
            route = None
        with self._lock:
            key = f"{method} {route.template if route else path}"
            self.requests[key] = self.requests.get(key, 0) + 1
        if route is None:
            raise _HTTPError(404, f"no route for {method} {path}")
        return 200, route.media, getattr(self, route.action)(query, body, **args)

    def _list_solvers(self, query, body):
        spec = query.get("filter", ["all"])[0]
        return [_filtered(s.definition, spec) for s in self._solvers.values()]

    def _get_solver(self, query, body, name):
        solver = self._solvers.get(name)
        if solver is None:
            raise _HTTPError(404, f"solver {name!r} not found")
        return _filtered(solver.definition, query.get("filter", ["all"])[0])

    def _submit(self, query, body):
        if self._faults.take("rate-limit")[0]:
            raise _HTTPError(429, "Too many requests: rate limit exceeded (injected)")
        if self._faults.take("server-error")[0]:
            raise _HTTPError(503, "Service unavailable (injected)")
        documents = []
        for job in body if isinstance(body, list) else [body]:
            try:
                problem = parse_job(job, self._solvers)
            except JobError as exc:
                documents.append({"error_code": exc.code, "error_msg": str(exc)})
                continue
            documents.append(self.store.submit(problem, label=job.get("label"), data=job["data"]))
        return documents if isinstance(body, list) else documents[0]

    def _statuses(self, query, body):
        if self._faults.take("poll-error")[0]:
            raise _HTTPError(500, "Internal server error (injected)")
        if "id" not in query:
            return self.store.documents()
        ids = [i for i in query["id"][0].split(",") if i]
        return self.store.poll(ids, _seconds(query.get("timeout", ["0"])[0]))

    def _cancel_many(self, query, body):
        if not isinstance(body, list):
            raise _HTTPError(400, "expected a JSON list of problem ids")
        return [self.store.cancel(str(i)) for i in body]

    def _record(self, problem_id: str):
        record = self.store.find(problem_id)
        if record is None:
            raise _HTTPError(404, f"problem {problem_id!r} not found")
        return record

    def _cancel_one(self, query, body, id):
        doc = self.store.cancel(self._record(id).id)
        if "error_code" in doc:
            raise _HTTPError(doc["error_code"], doc["error_msg"])
        return doc

    def _status(self, query, body, id):
        return self.store.document(self._record(id), with_answer=True)

    def _answer(self, query, body, id):
        record = self._record(id)
        doc = self.store.document(record, with_answer=True)
        if "answer" not in doc:
            raise _HTTPError(404, f"problem {record.id} has no answer (status {doc['status']})")
        return {"answer": doc["answer"]}

    def _messages(self, query, body, id):
        self._record(id)
        return []

    def _info(self, query, body, id):
        record = self._record(id)
        doc = self.store.document(record, with_answer=True)
        info = {
            "id": record.id, "data": record.data, "params": record.problem.params,
            "metadata": {key: doc.get(key) for key in ("solver", "type", "label", "status", "submitted_on",
                                                       "solved_on")}
            | {"submitted_by": "local", "messages": []},
        }
        if "answer" in doc:
            info["answer"] = doc["answer"]
        return info

    # ---- HTTP transport ---------------------------------------------------------------------------

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
