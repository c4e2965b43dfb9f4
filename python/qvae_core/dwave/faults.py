"""Faults the local SAPI server can inject: HTTP errors answered instead of the next requests of one
kind, or outcomes applied to the next problems submitted."""

from __future__ import annotations

import threading

from .._validation import finite_array, positive_int

__all__ = ["FAULTS", "HTTP_FAULTS", "PROBLEM_FAULTS", "Faults"]

FAULTS = {
    "rate-limit": "429 on problem submission",
    "server-error": "503 on problem submission",
    "poll-error": "500 on status polling",
    "failed": "problem ends FAILED",
    "slow": "answer withheld for `delay` seconds (status IN_PROGRESS)",
    "truncated": "answer holds only half of the reads",
}
HTTP_FAULTS = ("rate-limit", "server-error", "poll-error")
PROBLEM_FAULTS = ("failed", "slow", "truncated")  # in the order a new problem takes them


class Faults:
    """Pending faults, each a queue of (count, delay), and the count served of each kind (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pending: dict[str, list] = {}
        self._served: dict[str, int] = {}

    def inject(self, fault: str, count: int = 1, *, delay: float = 0.0) -> None:
        """Apply `fault` (a key of FAULTS) to the next `count` requests or problems of its kind."""
        if fault not in FAULTS:
            raise ValueError(f"fault: expected one of {sorted(FAULTS)}, got {fault!r}")
        count = positive_int(count, "count")
        delay = float(finite_array(delay, "delay", ndim=0))
        if delay < 0 or (fault == "slow") != (delay > 0):
            raise ValueError(f"delay: must be > 0 for 'slow' faults and 0 otherwise, got {delay}")
        with self._lock:
            self._pending.setdefault(fault, []).append((count, delay))

    def take(self, kind: str) -> tuple[bool, float]:
        """(True, delay) and one use consumed if a fault of this kind is pending, else (False, 0)."""
        with self._lock:
            pending = self._pending.get(kind)
            if not pending:
                return False, 0.0
            count, delay = pending[0]
            if count == 1:
                pending.pop(0)
            else:
                pending[0] = (count - 1, delay)
            self._served[kind] = self._served.get(kind, 0) + 1
            return True, delay

    def take_problem_fault(self) -> tuple[str | None, float]:
        """(kind, delay) of the problem fault the next problem gets, or (None, 0)."""
        for kind in PROBLEM_FAULTS:
            taken, delay = self.take(kind)
            if taken:
                return kind, delay
        return None, 0.0

    @property
    def served(self) -> dict:
        with self._lock:
            return dict(self._served)
