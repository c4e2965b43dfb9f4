"""The problems of the local SAPI server: their lifecycle (PENDING, IN_PROGRESS, then COMPLETED,
FAILED or CANCELLED), the worker that answers them one at a time with the QPU emulator, long polls
and cancels, as SAPI documents (problem+json status documents). No HTTP here.

A problem's answer is a function of the store's seed, the problem (solver, type, biases and
parameters: `problem_digest`) and how many answers to the same problem were drawn before it, and of
nothing else: not of the order in which problems arrive (a client may post them from several
threads, and a retried problem comes after the others) nor of the other problems. The same problem
submitted again gets a fresh answer, the next of its own stream, as a QPU anneals afresh (copies in
flight together take them in the order they arrive); an answer lost to an injected `failed` or
`truncated` fault uses up no draw, so a retry after one gets the answer the first submission would
have had. The draw counts of the most recent MAX_DRAW_COUNTS distinct problems are kept (a problem
forgotten starts its stream again). Problem faults (faults.PROBLEM_FAULTS) are drawn at submission
and applied by the worker. Memory stays bounded: at most `max_queued` problems wait,
and finished problems expire (as SAPI answers do) `finished_ttl` seconds after their answer is
visible, the oldest first once more than `max_finished` are kept, whether or not requests come.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import queue
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from . import qp
from .emulator import Problem, QPUEmulator
from .faults import Faults
from ..seeds import derived_seed

__all__ = ["ProblemStore", "QueueFull", "TERMINAL", "MAX_DRAW_COUNTS", "problem_digest"]

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
MAX_DRAW_COUNTS = 100_000  # distinct problems whose answers drawn are counted (about 15 MB)


def problem_digest(problem: Problem) -> int:
    """A 128-bit digest of what the answer to `problem` depends on: solver, type, qubits, couplers,
    biases as submitted and parameters."""
    digest = hashlib.sha256()
    header = [problem.solver.name, problem.type, dict(problem.params)]
    digest.update(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    for array, dtype in ((problem.qubits, np.int64), (problem.edges, np.int64), (problem.linear, np.float64),
                         (problem.quadratic, np.float64)):
        array = np.ascontiguousarray(array, dtype=dtype)
        digest.update(np.asarray(array.shape, dtype=np.int64).tobytes())
        digest.update(array.tobytes())
    return int.from_bytes(digest.digest()[:16], "little")


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class _Record:
    """One problem received: what was submitted, its fault and its state."""

    id: str
    problem: Problem
    label: str | None
    data: dict  # as submitted, for problems/{id}/info
    submitted_on: datetime
    fault: str | None = None
    delay: float = 0.0
    status: str = "PENDING"
    solved_on: datetime | None = None
    answer: dict | None = None
    error_message: str | None = None
    ready_at: float = 0.0  # monotonic time before which a finished answer is withheld
    expires_at: float | None = None  # monotonic time at which a finished problem is dropped

    def visible_status(self, now: float) -> str:
        if self.status in ("COMPLETED", "FAILED") and now < self.ready_at:
            return "IN_PROGRESS"
        return self.status

    def status_document(self, now: float, *, with_answer: bool = False) -> dict:
        status = self.visible_status(now)
        doc = {
            "id": self.id,
            "type": self.problem.type,
            "solver": self.problem.solver.definition["identity"],
            "label": self.label,
            "status": status,
            "submitted_on": _iso(self.submitted_on),
        }
        if status in TERMINAL and self.solved_on is not None:
            doc["solved_on"] = _iso(self.solved_on)
        if status == "FAILED":
            doc["error_message"] = self.error_message
        if with_answer and status == "COMPLETED":
            doc["answer"] = self.answer
        return doc


class QueueFull(Exception):
    """A submission the work queue has no room for: now (`fits_later`) or ever."""

    def __init__(self, message: str, *, fits_later: bool):
        super().__init__(message)
        self.fits_later = fits_later


class ProblemStore:
    """Problems received, oldest first, answered in submission order by one worker thread.

    emulator: answers each problem; faults: where problem faults are drawn; seed: the root of the
    problems' seeds (see the module docstring); max_poll_wait: the longest a long poll waits, in
    seconds; max_queued: the most problems waiting to be answered; finished_ttl (seconds) and max_finished: how long and
    how many finished problems are kept.
    """

    def __init__(self, emulator: QPUEmulator, faults: Faults, *, seed: int, max_poll_wait: float,
                 max_queued: int = 100, finished_ttl: float = 300.0, max_finished: int = 1000):
        self.emulator = emulator
        self.faults = faults
        self.seed = seed
        self.max_poll_wait = max_poll_wait
        self.max_queued = max_queued
        self.finished_ttl = finished_ttl
        self.max_finished = max_finished
        self._records: dict[str, _Record] = {}
        self._expiry: list = []  # heap of (expires_at, sequence, id) of the finished problems
        self._sequence = itertools.count()
        self._draws: OrderedDict = OrderedDict()  # problem_digest -> answers drawn (the worker's only)
        self._cond = threading.Condition()
        self._closing = False
        self._work: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._work_loop, name="sapi-worker", daemon=True)
        self._worker.start()

    def close(self) -> None:
        """Wake long polls and stop the worker (idempotent)."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
        self._work.put(None)
        self._worker.join(timeout=10)

    # ---- submitting and answering ---------------------------------------------------------------

    def submit(self, problem: Problem, *, label: str | None, data: dict) -> dict:
        """Queue one checked problem; returns its status document (see submit_all)."""
        return self.submit_all([(problem, label, data)])[0]

    def submit_all(self, jobs: list) -> list:
        """Queue checked problems, given as (problem, label, data as submitted), all or none;
        returns their status documents. Raises QueueFull if the queue has no room for all."""
        with self._cond:
            self._expire(time.monotonic())
            waiting = self._work.qsize()
            if waiting + len(jobs) > self.max_queued:
                fits_later = len(jobs) <= self.max_queued
                raise QueueFull(f"the work queue holds {waiting} of at most {self.max_queued} problems; "
                                f"{len(jobs)} more " + ("do not fit now" if fits_later else "never fit"),
                                fits_later=fits_later)
            now, documents = time.monotonic(), []
            for problem, label, data in jobs:
                record = _Record(str(uuid.uuid4()), problem, label, data, _now())
                record.fault, record.delay = self.faults.take_problem_fault()
                self._records[record.id] = record
                documents.append(record.status_document(now))
                self._work.put(record)
        return documents

    def _work_loop(self) -> None:
        idle_wait = min(1.0, self.finished_ttl / 2)  # finished problems expire while nothing comes
        while True:
            try:
                record = self._work.get(timeout=idle_wait)
            except queue.Empty:
                with self._cond:
                    self._expire(time.monotonic())
                continue
            if record is None:
                return
            with self._cond:
                if record.status == "CANCELLED":
                    continue
                record.status = "IN_PROGRESS"
            try:
                if record.fault == "failed":
                    raise RuntimeError("injected failure: the QPU could not run this problem")
                answer, error = self._answer(record), None
            except Exception as exc:  # a failed problem, reported to the client as SAPI does
                answer, error = None, str(exc)
            with self._cond:
                if record.status != "CANCELLED":
                    record.status = "FAILED" if error else "COMPLETED"
                    record.answer, record.error_message = answer, error
                    record.solved_on = _now()
                    record.ready_at = time.monotonic() + record.delay if record.delay else 0.0
                    self._finished(record, time.monotonic())
                self._cond.notify_all()

    def _finished(self, record: _Record, now: float) -> None:
        """Schedule a problem just finished for expiry (lock held)."""
        if record.expires_at is None:
            record.expires_at = max(now, record.ready_at) + self.finished_ttl
            heapq.heappush(self._expiry, (record.expires_at, next(self._sequence), record.id))
        self._expire(now)

    def _expire(self, now: float) -> None:
        """Drop the finished problems past their time, and the oldest beyond max_finished (lock held)."""
        while self._expiry and (self._expiry[0][0] <= now or len(self._expiry) > self.max_finished):
            self._records.pop(heapq.heappop(self._expiry)[2], None)

    def _next_seed(self, problem: Problem, *, counted: bool) -> int:
        """The seed of the next answer to `problem`: seed, digest, number of answers drawn before.
        `counted`: this draw counts (the answer is not lost to a fault). Worker thread only."""
        key = problem_digest(problem)
        drawn = self._draws.pop(key, 0)
        self._draws[key] = drawn + counted  # the most recently drawn last
        while len(self._draws) > MAX_DRAW_COUNTS:
            self._draws.popitem(last=False)
        return derived_seed(self.seed, key, drawn)

    def _answer(self, record: _Record) -> dict:
        """The emulator's answer to the record's problem (truncated by that fault), as a qp answer."""
        problem = record.problem
        answer = self.emulator.sample(problem, self._next_seed(problem, counted=record.fault != "truncated"))
        # (a "failed" problem draws nothing; a truncated answer is lost to the client: not counted)
        if record.fault == "truncated":
            answer = answer.first_reads(max(problem.num_reads // 2, 1))
        labels = problem.labels
        order = np.argsort(labels)  # active_variables are listed in increasing label order
        return qp.encode_answer(answer.states[:, order], labels[order], answer.energies, answer.num_occurrences,
                                problem.solver.properties["num_qubits"], answer.timing)

    # ---- reading, polling, cancelling -------------------------------------------------------------

    def find(self, problem_id: str) -> _Record | None:
        with self._cond:
            self._expire(time.monotonic())
            return self._records.get(problem_id)

    def document(self, record: _Record, *, with_answer: bool = False) -> dict:
        """The record's status document as of now (with its answer, if asked and COMPLETED)."""
        with self._cond:
            return record.status_document(time.monotonic(), with_answer=with_answer)

    def documents(self) -> list:
        """Status documents of every problem kept, oldest first."""
        now = time.monotonic()
        with self._cond:
            self._expire(now)
            return [r.status_document(now) for r in self._records.values()]

    def poll(self, ids: list, timeout: float) -> list:
        """Statuses of the known problems among `ids`, once one is finished or `timeout` has passed."""
        deadline = time.monotonic() + min(max(timeout, 0.0), self.max_poll_wait)
        with self._cond:
            while True:
                now = time.monotonic()
                self._expire(now)
                found = [self._records[i] for i in ids if i in self._records]
                if self._closing or now >= deadline or any(r.visible_status(now) in TERMINAL for r in found):
                    return [r.status_document(now) for r in found]
                wake = min([deadline] + [r.ready_at for r in found if r.ready_at > now])
                self._cond.wait(wake - now)

    def cancel(self, problem_id: str) -> dict:
        """Cancel a problem not yet finished: its status document, or an error document (404, 409)."""
        with self._cond:
            record = self._records.get(problem_id)
            if record is None:
                return {"error_code": 404, "error_msg": f"problem {problem_id!r} not found"}
            now = time.monotonic()
            if record.visible_status(now) in TERMINAL:
                return {"error_code": 409, "error_msg": "Problem has been finished."}
            record.status, record.answer, record.solved_on = "CANCELLED", None, _now()
            self._finished(record, now)
            self._cond.notify_all()
            return record.status_document(now)

    def summaries(self) -> list[dict]:
        """Every problem kept, oldest first: id, solver, status, params, decoded data."""
        now = time.monotonic()
        with self._cond:
            self._expire(now)
            return [
                {"id": r.id, "solver": r.problem.solver.name, "status": r.visible_status(now),
                 "params": r.problem.params, "labels": r.problem.labels, "linear": r.problem.linear,
                 "quadratic": r.problem.quadratic, "type": r.problem.type}
                for r in self._records.values()
            ]
