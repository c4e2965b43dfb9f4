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

Hostile or careless input gets a 4xx, never a 500, and costs bounded memory: the token is checked
from the headers before any body is read (401); the declared body, the chunked body and its
inflated form are each capped at `max_body` bytes (413), the JSON nesting depth at
_MAX_JSON_DEPTH (400); a body of another media type is 415; a response sent before its request's
body was read closes the connection (the body is never taken for a next request); at most
`max_queued` problems wait (429 with Retry-After), finished ones expire (`finished_ttl`,
`max_finished`), and the request log counts by route.
"""


from __future__ import annotations

import copy
import functools
import hmac
import json
import math
import re
import socket
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np

from .._validation import positive_float, positive_int, seed_value
from .emulator import QPUEmulator
from .faults import FAULTS, Faults
from .jobs import JobError, parse_job
from .solvers import LocalSolver, qpu_solver
from .store import ProblemStore, QueueFull

__all__ = ["SAPIServer", "FAULTS", "default_solvers", "MAX_BODY"]

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
# Default cap on a request body, declared, chunked or inflated: a full Pegasus P(16) or Zephyr
# problem is about 0.5 MB of JSON and dwave-cloud-client submits up to 20 per request.
MAX_BODY = 32 * 2**20
_MAX_JSON_DEPTH = 32  # a batch of jobs nests 5 deep (jobs, job, params, anneal_schedule, point)
_RETRY_AFTER = {"Retry-After": "1"}
_READ_SIZE = 64 * 2**10
_LINGER_SECONDS, _LINGER_BYTES = 1.0, 2**20  # what is drained of an unread body before closing


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
        raise _HTTPError(400, f"timeout: not a number: {text!r:.60}") from None
    if not math.isfinite(value):
        raise _HTTPError(400, f"timeout: must be a finite number of seconds, got {text!r:.60}")
    return value


class _HTTPError(Exception):
    def __init__(self, code: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.code = code
        self.headers = headers or {}


@dataclass(frozen=True)
class _Route:
    """`method` on a path matching `template` (segments; {id} is one segment, {name} the rest of
    the path) is answered by the SAPIServer method `action` with a document of media type `media`;
    `takes_body`: the request's JSON body is read and passed on."""

    method: str
    template: str
    media: str
    action: str
    takes_body: bool = False

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
    _Route("POST", "problems", "problems", "_submit", takes_body=True),
    _Route("GET", "problems", "problems", "_statuses"),
    _Route("DELETE", "problems", "problems", "_cancel_many", takes_body=True),
    _Route("GET", "problems/{id}", "problem", "_status"),
    _Route("DELETE", "problems/{id}", "problem", "_cancel_one"),
    _Route("GET", "problems/{id}/answer", "answer", "_answer"),
    _Route("GET", "problems/{id}/info", "info", "_info"),
    _Route("GET", "problems/{id}/messages", "messages", "_messages"),
)


class SAPIServer:
    """Local SAPI server; use as a context manager (background thread) or `serve_forever()`.

    solvers: definitions from `qpu_solver` (default: `default_solvers()`); beta: inverse
    temperature of the answers; sweeps: block-Gibbs sweeps per read; seed: with the problem (and how
    many answers to it were drawn before) fixes each answer, whatever the order in which problems
    arrive (store.ProblemStore says how retries draw); token: the X-Auth-Token to require (None accepts any
    non-empty token); port 0 picks a free port; max_poll_wait: the longest a long poll waits (s).
    Limits: max_body (bytes of a request body, declared and inflated), max_queued (problems
    waiting), finished_ttl (seconds a finished problem is kept) and max_finished (how many).
    `requests` counts requests by route, `responses` by HTTP status.
    """

    def __init__(self, solvers=None, *, beta: float = 2.0, sweeps: int = 1000, seed=None, token: str | None = None,
                 host: str = "127.0.0.1", port: int = 0, max_poll_wait: float = 30.0, max_body: int = MAX_BODY,
                 max_queued: int = 100, finished_ttl: float = 300.0, max_finished: int = 1000):
        if host not in _LOOPBACK:
            raise ValueError(f"host: the local SAPI server binds to loopback only {_LOOPBACK}, got {host!r}")
        self.emulator = QPUEmulator(beta=beta, sweeps=sweeps)
        seed = seed_value(seed)
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError(f"token: expected a non-empty string or None (any token), got {token!r}")
        self.token = token
        if positive_int(port, "port", minimum=0) > 65535:
            raise ValueError(f"port: must be in [0, 65535], got {port}")
        self.max_body = positive_int(max_body, "max_body")
        store_options = dict(max_poll_wait=positive_float(max_poll_wait, "max_poll_wait"),
                             max_queued=positive_int(max_queued, "max_queued"),
                             finished_ttl=positive_float(finished_ttl, "finished_ttl"),
                             max_finished=positive_int(max_finished, "max_finished"))
        if solvers is not None and not isinstance(solvers, (list, tuple)):
            raise ValueError(f"solvers: expected a list of solver definitions, got {type(solvers).__name__}")
        definitions = default_solvers() if solvers is None else list(solvers)
        if not definitions:
            raise ValueError("solvers: need at least one solver definition")
        served = [LocalSolver.from_definition(d, f"solvers[{k}]") for k, d in enumerate(definitions)]
        self._solvers = {s.name: s for s in served}
        if len(self._solvers) != len(definitions):
            raise ValueError("solvers: names must be distinct")
        self._faults = Faults()
        self._lock = threading.Lock()
        self.requests: dict[str, int] = {}  # by route, e.g. "POST problems"; "GET (no route)"
        self.responses: dict[int, int] = {}  # by HTTP status
        self._httpd = _HTTPServer((host, port), self)
        self._serving: threading.Thread | None = None  # the background thread of start()
        self._stopped = False
        self.store = ProblemStore(self.emulator, self._faults, seed=seed, **store_options)

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
        """Every problem kept (finished ones expire), oldest first: id, solver, status, params, decoded data."""
        return self.store.summaries()

    # ---- authentication and routing -----------------------------------------------------------

    def _authorized(self, token: str | None) -> bool:
        if not token:
            return False
        return self.token is None or hmac.compare_digest(token.encode("utf-8", "surrogateescape"),
                                                         self.token.encode("utf-8", "surrogateescape"))

    def _route(self, method: str, path: str) -> tuple[_Route, dict]:
        """The route answering `method` on `path` (below SAPI_PATH) and its parameters; counts the request."""
        path = "/".join(p for p in path.split("/") if p)
        for route in _ROUTES:
            args = route.match(method, path)
            if args is not None:
                break
        else:
            route = None
        key = f"{method} {route.template if route else '(no route)'}"
        with self._lock:
            self.requests[key] = self.requests.get(key, 0) + 1
        if route is None:
            raise _HTTPError(404, f"no route for {method} {path!r:.100}")
        return route, args

    def _count_response(self, status: int) -> None:
        with self._lock:
            self.responses[status] = self.responses.get(status, 0) + 1

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
            raise _HTTPError(429, "Too many requests: rate limit exceeded (injected)", _RETRY_AFTER)
        if self._faults.take("server-error")[0]:
            raise _HTTPError(503, "Service unavailable (injected)")
        if not isinstance(body, (list, dict)):
            raise _HTTPError(400, "expected a job (a JSON object) or a list of jobs")
        documents, accepted = [], []  # accepted: (position, (problem, label, data))
        for job in body if isinstance(body, list) else [body]:
            try:
                problem = parse_job(job, self._solvers)
            except JobError as exc:  # this job only: the others go on
                documents.append({"error_code": exc.code, "error_msg": str(exc)})
                continue
            accepted.append((len(documents), (problem, job.get("label"), job.get("data"))))
            documents.append(None)
        try:
            queued = self.store.submit_all([job for _, job in accepted])
        except QueueFull as exc:  # 429 while the queue is busy, 413 for a batch it can never hold
            if exc.fits_later:
                raise _HTTPError(429, str(exc), _RETRY_AFTER) from None
            raise _HTTPError(413, str(exc)) from None
        for (position, _), document in zip(accepted, queued):
            documents[position] = document
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


class _HTTPServer(ThreadingHTTPServer):
    """The listening socket and one thread per connection, each handled by _Handler for `sapi`."""

    daemon_threads = True

    def __init__(self, address, sapi: SAPIServer):
        self.sapi = sapi
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address):
        """A connection the client dropped or let time out is no error of the server's."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """One connection: requests in turn, each checked from its headers (token, route, body
    framing, media type, declared size) before its body is read, if its route takes one."""

    protocol_version = "HTTP/1.1"
    server_version = "qvae-core-sapi/0.1"
    timeout = 60  # idle keep-alive connections are closed after this many seconds

    def setup(self):
        super().setup()
        self._linger = False  # close after draining what is left of an unread body

    def log_message(self, format, *args):  # quiet; requests are counted in server.requests
        pass

    def parse_request(self):
        self._checked = None  # (route, args, query) once the headers passed _check_headers
        self._body_unread = False
        return super().parse_request()

    def handle_expect_100(self):
        """Refuse from the headers alone before the client sends the body (Expect: 100-continue)."""
        self._body_unread = self._declares_body()
        try:
            self._checked = self._check_headers()
        except _HTTPError as exc:
            self._send_error(exc)
            return False
        return super().handle_expect_100()

    def do_GET(self):
        self._respond()

    do_POST = do_DELETE = do_GET

    def finish(self):
        super().finish()
        if self._linger:  # let the client read the response before the close resets the connection
            _drain(self.connection)

    # ---- one request ----------------------------------------------------------------------------

    def _respond(self):
        sapi = self.server.sapi
        self._body_unread = self._declares_body()
        try:
            route, args, query = self._checked or self._check_headers()
            body = self._read_json() if route.takes_body else None
            document = getattr(sapi, route.action)(query, body, **args)
        except _HTTPError as exc:
            self._send_error(exc)
            return
        except (TimeoutError, ConnectionError):
            raise  # the client is gone or stalled: the connection is dropped
        except Exception as exc:  # a bug here: answer as SAPI would rather than drop the connection
            self._send_error(_HTTPError(500, f"internal error: {exc!r}"))
            return
        self._send(200, f"{_MEDIA[route.media]}; version={_VERSION}", document)

    def _check_headers(self) -> tuple[_Route, dict, dict]:
        """(route, path parameters, query) of an authorized request whose body, if its route
        takes one, is framed, typed and sized acceptably; else _HTTPError (404, 401, 400, 415, 413)."""
        sapi = self.server.sapi
        url = urlsplit(self.path)
        if not url.path.startswith(SAPI_PATH):
            raise _HTTPError(404, f"not a SAPI path: {url.path!r:.100}")
        if not sapi._authorized(self.headers.get("X-Auth-Token")):
            raise _HTTPError(401, "Invalid token or access denied")
        route, args = sapi._route(self.command, url.path[len(SAPI_PATH):])
        if route.takes_body:
            self._length = self._declared_length()
            self._check_media_type()
            if self._length is not None and self._length > sapi.max_body:
                raise _HTTPError(413, f"request body of {self._length} bytes; at most {sapi.max_body}")
        return route, args, parse_qs(url.query)

    def _declares_body(self) -> bool:
        return "Transfer-Encoding" in self.headers or self.headers.get("Content-Length", "0").strip() != "0"

    def _declared_length(self) -> int | None:
        """Content-Length, or None for a chunked body."""
        lengths = self.headers.get_all("Content-Length") or []
        codings = ",".join(self.headers.get_all("Transfer-Encoding") or [])
        if codings:
            if lengths:
                raise _HTTPError(400, "Content-Length and Transfer-Encoding together: the body's end is ambiguous")
            if [c.strip().lower() for c in codings.split(",")] != ["chunked"]:
                raise _HTTPError(400, f"Transfer-Encoding: only 'chunked' is supported, got {codings!r:.60}")
            return None
        values = {v.strip() for v in lengths} or {"0"}
        if len(values) != 1 or not re.fullmatch(r"[0-9]{1,18}", next(iter(values))):
            raise _HTTPError(400, f"Content-Length: expected one non-negative integer, got {lengths!r:.60}")
        return int(values.pop())

    def _check_media_type(self) -> None:
        content_type = self.headers.get("Content-Type")  # dwave-cloud-client sends none with its jobs
        if content_type is not None:
            media = content_type.split(";")[0].strip().lower()
            if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
                raise _HTTPError(415, f"Content-Type: expected application/json, got {content_type!r:.60}")
        coding = self.headers.get("Content-Encoding", "identity").strip().lower()
        if coding not in ("identity", "deflate"):
            raise _HTTPError(415, f"Content-Encoding: expected deflate or none, got {coding!r:.60}")

    # ---- the body -----------------------------------------------------------------------------------

    def _read_json(self):
        """The body parsed as JSON (None if empty), read, inflated and nested within the limits."""
        limit = self.server.sapi.max_body
        inflater = _Inflater(limit) if self.headers.get("Content-Encoding", "").strip().lower() == "deflate" else None
        raw = bytearray()
        for piece in self._pieces(limit):
            raw += inflater.feed(piece) if inflater else piece
            if len(raw) > limit:
                raise _HTTPError(413, f"request body over {limit} bytes")
        if inflater:
            raw += inflater.finish()
        self._body_unread = False
        return _parse_json(bytes(raw))

    def _pieces(self, limit: int):
        """The body as it arrives: Content-Length bytes, or the chunks of a chunked body (at most
        `limit` bytes in all, else 413)."""
        if self._length is not None:
            remaining = self._length
            while remaining:
                piece = self.rfile.read(min(remaining, _READ_SIZE))
                if not piece:
                    raise _HTTPError(400, f"body ended {remaining} bytes before its Content-Length")
                remaining -= len(piece)
                yield piece
            return
        total = 0
        while True:
            line = self.rfile.readline(1026)
            size = line.split(b";")[0].strip()
            if not line.endswith(b"\n") or not re.fullmatch(rb"[0-9A-Fa-f]{1,15}", size):
                raise _HTTPError(400, f"malformed chunk size line {bytes(line[:40])!r}")
            remaining = int(size, 16)
            if remaining == 0:
                break
            total += remaining
            if total > limit:
                raise _HTTPError(413, f"request body over {limit} bytes")
            while remaining:
                piece = self.rfile.read(min(remaining, _READ_SIZE))
                if not piece:
                    raise _HTTPError(400, "body ended inside a chunk")
                remaining -= len(piece)
                yield piece
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _HTTPError(400, "a chunk is not followed by CRLF")
        for _ in range(64):  # trailer lines, ignored
            line = self.rfile.readline(8194)
            if line in (b"\r\n", b"\n"):
                return
            if not line.endswith(b"\n"):
                raise _HTTPError(400, "malformed chunked trailer")
        raise _HTTPError(400, "too many chunked trailer lines")

    # ---- responses -------------------------------------------------------------------------------------

    def _send_error(self, exc: _HTTPError) -> None:
        self._send(exc.code, "application/json", {"error_code": exc.code, "error_msg": str(exc)}, exc.headers)

    def _send(self, status: int, content_type: str, document, headers: dict | None = None) -> None:
        """One response; the connection is closed after it if the request's body was not read."""
        payload = json.dumps(document).encode()
        self.server.sapi._count_response(status)  # before the reply: a client that has it sees it counted
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self._body_unread:
            self.send_header("Connection", "close")
            self._linger = True
        self.end_headers()
        self.wfile.write(payload)


class _Inflater:
    """Streamed deflate decoding (zlib-wrapped or raw, as clients send it) that stops with 413 as
    soon as the output passes `limit` bytes: a small bomb never inflates in memory."""

    def __init__(self, limit: int):
        self.limit, self.produced = limit, 0
        self._head = b""
        self._decoder = None

    def feed(self, data: bytes) -> bytes:
        if self._decoder is None:  # the first two bytes tell a zlib header from a raw stream
            self._head += data
            if len(self._head) < 2:
                return b""
            data, self._head = self._head, b""
            wrapped = data[0] & 0x0F == 8 and (data[0] * 256 + data[1]) % 31 == 0
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        if self._decoder.eof:
            raise _HTTPError(400, "data after the end of the deflate stream")
        try:
            out = self._decoder.decompress(data, self.limit - self.produced + 1)
        except zlib.error as exc:
            raise _HTTPError(400, f"body: not a deflate stream ({exc})") from None
        self.produced += len(out)
        if self.produced > self.limit:
            raise _HTTPError(413, f"request body inflates to over {self.limit} bytes")
        if self._decoder.unused_data:
            raise _HTTPError(400, "data after the end of the deflate stream")
        return out

    def finish(self) -> bytes:
        if self._decoder is None and not self._head:
            return b""  # an empty body
        if self._decoder is None or not self._decoder.eof:
            raise _HTTPError(400, "body: truncated deflate stream")
        return b""


# JSON strings (the brackets inside them do not nest), and a quote that opens no terminated string
# with all that follows it (any parse ends inside that string).
_JSON_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|"[\s\S]*')
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


def _nesting_exceeds(raw: bytes, limit: int) -> bool:
    """Whether a JSON parse of `raw` would nest deeper than `limit` before it ends or fails: the
    running depth of the brackets outside strings, in blocks (linear time, bounded memory)."""
    brackets = np.frombuffer(_JSON_STRINGS.sub(b"", raw).translate(None, _NOT_BRACKETS), np.uint8)
    depth = 0
    for start in range(0, brackets.size, _READ_SIZE):
        block = brackets[start:start + _READ_SIZE]
        running = depth + np.cumsum(np.where((block == 0x5B) | (block == 0x7B), 1, -1))
        if running.max() > limit:
            return True
        depth = int(running[-1])
    return False


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:30]} is beyond float64")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 18:
        raise ValueError(f"integer {text[:30]}... has more than 18 digits")
    return int(text)


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _parse_json(raw: bytes):
    """The document in `raw`; 400 for invalid JSON, NaN/Infinity, numbers beyond float64 or int64, or
    nesting deeper than _MAX_JSON_DEPTH."""
    if not raw.strip():
        return None
    if _nesting_exceeds(raw, _MAX_JSON_DEPTH):
        raise _HTTPError(400, f"body: JSON nested deeper than {_MAX_JSON_DEPTH} levels")
    try:
        return json.loads(raw, parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise _HTTPError(400, f"body: not valid JSON ({exc})") from None


def _drain(connection: socket.socket) -> None:
    """Half-close, then read and discard what the client still sends (at most _LINGER_BYTES, for
    at most _LINGER_SECONDS): closing with unread data would reset the connection and could lose
    the response sent."""
    try:
        connection.shutdown(socket.SHUT_WR)
        deadline, drained = time.monotonic() + _LINGER_SECONDS, 0
        while drained < _LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
            connection.settimeout(left)
            piece = connection.recv(_READ_SIZE)
            if not piece:
                return
            drained += len(piece)
    except OSError:
        pass


def _filtered(definition: dict, spec: str) -> dict:
    """Apply a SAPI field filter such as 'all,-status,-avg_load' or 'none,+identity,+status'.

    Fields are dotted paths into objects; a path that does not exist selects or removes nothing,
    one that runs into a value that is not an object (a string, a list) is a 400."""
    result: dict = {}
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        if token in ("all", "none"):
            result = copy.deepcopy(definition) if token == "all" else {}
            continue
        remove = token.startswith("-")
        keys = (token[1:] if token[0] in "+-" else token).split(".")
        if not all(keys):
            raise _HTTPError(400, f"filter: {token!r:.60} has an empty field name")
        found = _field(definition, keys, token)
        if remove:
            parent = _field(result, keys[:-1], token) if len(keys) > 1 else result
            if isinstance(parent, dict):
                parent.pop(keys[-1], None)
        elif found is not _ABSENT:
            target = result
            for key in keys[:-1]:
                target = target.setdefault(key, {})
            target[keys[-1]] = copy.deepcopy(found)
    return result


_ABSENT = object()


def _field(node, keys: list, token: str):
    """node[k0][k1]... or _ABSENT; 400 if the path runs into a value that is not an object."""
    for key in keys:
        if not isinstance(node, dict):
            raise _HTTPError(400, f"filter: {token!r:.60} selects inside a value that is not an object")
        node = node.get(key, _ABSENT)
        if node is _ABSENT:
            return _ABSENT
    return node
