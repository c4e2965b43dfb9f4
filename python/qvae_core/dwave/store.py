"""The problems of the local SAPI server: their lifecycle (PENDING, IN_PROGRESS, then COMPLETED,
FAILED or CANCELLED), the worker that answers them one at a time with the QPU emulator, long polls
and cancels, as SAPI documents (problem+json status documents). No HTTP here.

Each problem's seed is derived from the store's seed and its submission index, so answers are
reproducible for a given submission order. Problem faults (faults.PROBLEM_FAULTS) are drawn at
submission and applied by the worker.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from . import qp
from .emulator import Problem, QPUEmulator
from .faults import Faults

__all__ = ["ProblemStore", "TERMINAL"]

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


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


class ProblemStore:
    """Problems received, oldest first, answered in submission order by one worker thread.

    emulator: answers each problem; faults: where problem faults are drawn; seed: the root of the
    problems' seeds; max_poll_wait: the longest a long poll waits, in seconds.
    """

    def __init__(self, emulator: QPUEmulator, faults: Faults, *, seed: int, max_poll_wait: float):
        self.emulator = emulator
        self.faults = faults
        self.seed = seed
        self.max_poll_wait = max_poll_wait
        self._records: dict[str, _Record] = {}
        self._counter = itertools.count()
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
        """Queue a checked problem; returns its status document."""
        with self._cond:
            seed = int(np.random.SeedSequence([self.seed, next(self._counter)]).generate_state(1, np.uint64)[0])
            record = _Record(str(uuid.uuid4()), problem, label, data, seed, _now())
            record.fault, record.delay = self.faults.take_problem_fault()
            self._records[record.id] = record
            document = record.status_document(time.monotonic())
        self._work.put(record)
        return document

    def _work_loop(self) -> None:
        while (record := self._work.get()) is not None:
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
                self._cond.notify_all()

    def _answer(self, record: _Record) -> dict:
        """The emulator's answer to the record's problem (truncated by that fault), as a qp answer."""
        problem = record.problem
        answer = self.emulator.sample(problem, record.seed)
        if record.fault == "truncated":
            answer = answer.first_reads(max(problem.num_reads // 2, 1))
        labels = problem.labels
        order = np.argsort(labels)  # active_variables are listed in increasing label order
        return qp.encode_answer(answer.states[:, order], labels[order], answer.energies, answer.num_occurrences,
                                problem.solver.properties["num_qubits"], answer.timing)

    # ---- reading, polling, cancelling -------------------------------------------------------------

    def find(self, problem_id: str) -> _Record | None:
        with self._cond:
            return self._records.get(problem_id)

    def document(self, record: _Record, *, with_answer: bool = False) -> dict:
        """The record's status document as of now (with its answer, if asked and COMPLETED)."""
        with self._cond:
            return record.status_document(time.monotonic(), with_answer=with_answer)

    def documents(self) -> list:
        """Status documents of every problem kept, oldest first."""
        now = time.monotonic()
        with self._cond:
            return [r.status_document(now) for r in self._records.values()]

    def poll(self, ids: list, timeout: float) -> list:
        """Statuses of the known problems among `ids`, once one is finished or `timeout` has passed."""
        deadline = time.monotonic() + min(max(timeout, 0.0), self.max_poll_wait)
        with self._cond:
            while True:
                now = time.monotonic()
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
            self._cond.notify_all()
            return record.status_document(now)

    def summaries(self) -> list[dict]:
        """Every problem kept, oldest first: id, solver, status, params, decoded data."""
        now = time.monotonic()
        with self._cond:
            return [
                {"id": r.id, "solver": r.problem.solver.name, "status": r.visible_status(now),
                 "params": r.problem.params, "labels": r.problem.labels, "linear": r.problem.linear,
                 "quadratic": r.problem.quadratic, "type": r.problem.type}
                for r in self._records.values()
            ]
