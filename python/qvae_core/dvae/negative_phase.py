"""The negative phase of a training step, run behind the networks.

The model samples of a step depend only on the prior's parameters at the start of the step, not on
the encoder or decoder. `NegativePhase.start` takes one host copy of those parameters
(Prior.numpy_model) and, with overlap, hands the sampler's `sample` call to a single background
thread (the C++ samplers release the GIL; a QPU sampler waits on the network); the networks' forward
and backward run meanwhile, and `samples` joins before the prior's gradient is formed. The sampler
draws only from its own random streams and is touched by one thread at a time (the worker between
start and samples, the caller otherwise), so the result is bit-identical to running the two one
after the other (overlap "never").

Whether overlapping pays depends on the machine: beside networks on a GPU it hides the sampling; where
networks and sampler share a few CPU cores both want all of them and the overlapped step can be the
slower. Overlap "auto" (the default) therefore times both ways (`OverlapSchedule`) and keeps the faster.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from .._validation import binary_states
from .device import Placement

__all__ = ["NegativePhase", "OverlapSchedule", "OVERLAP_MODES", "check_overlap_mode"]

OVERLAP_MODES = ("auto", "always", "never")


def check_overlap_mode(mode) -> None:
    """ValueError naming `overlap` unless `mode` is one of OVERLAP_MODES."""
    if mode not in OVERLAP_MODES:
        raise ValueError(f"overlap: expected one of {list(OVERLAP_MODES)}, got {mode!r}")


class OverlapSchedule:
    """Whether the next step overlaps its sampling with the networks.

    "always" and "never" are fixed. "auto" times the two ways in turn, `trials` steps each (overlapped
    first), at the start and again after every `period` steps, and keeps the one of lower median step
    time (start of sampling to samples in hand: the span where the two differ) until the next trial.
    The samples are the same either way, so the choice changes only how long a step takes.
    """

    def __init__(self, mode: str = "auto", *, trials: int = 4, period: int = 250):
        check_overlap_mode(mode)
        self.mode = mode
        self.trials = trials
        self.period = period
        self.chosen = True  # the way a settled "auto" runs
        self._step = 0  # steps recorded since the current trial began
        self._times = {True: [], False: []}

    def _in_trial(self) -> bool:
        return self._step < 2 * self.trials

    def overlap_next(self) -> bool:
        if self.mode != "auto":
            return self.mode == "always"
        return self._step % 2 == 0 if self._in_trial() else self.chosen

    def record(self, overlapped: bool, seconds: float) -> None:
        """The time of a step run the way `overlap_next` said."""
        if self.mode != "auto":
            return
        if self._in_trial():
            self._times[overlapped].append(seconds)
            if self._step == 2 * self.trials - 1:
                self.chosen = statistics.median(self._times[True]) < statistics.median(self._times[False])
                self._times = {True: [], False: []}
        self._step = (self._step + 1) % (2 * self.trials + self.period)


class NegativePhase:
    """Drives a negative-phase sampler (samplers.py contract) once per step, overlapped or not.

    `seconds` accumulates the time the caller waited for samples: the exposed sampling time
    (all of the sampling in a step that did not overlap); `overlapped_steps` counts the steps that did.
    """

    def __init__(self, sampler, placement: Placement, *, overlap: str = "auto"):
        self.sampler = sampler
        self.placement = placement
        self.schedule = OverlapSchedule(overlap)
        self.seconds = 0.0
        self.overlapped_steps = 0
        self._started = None  # perf_counter at the start of the step in progress
        self._executor = None
        self._pending: Future | None = None
        self._model = None  # the host copy of the prior's parameters (sequential mode)

    def start(self, prior) -> None:
        """Begin the step's sampling from the prior's current parameters."""
        if self._pending is not None or self._model is not None:
            raise RuntimeError("NegativePhase.start: the previous step's samples were not taken")
        self._started = time.perf_counter()
        model = prior.numpy_model()  # the one host copy of this step
        if not self.schedule.overlap_next():
            self._model = model
            return
        self.overlapped_steps += 1
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="negative-phase")
        self._pending = self._executor.submit(self.sampler.sample, model)

    def samples(self, num_units: int, dtype: torch.dtype) -> torch.Tensor:
        """The step's model samples, (N, num_units) `dtype` on the run's device (one copy)."""
        tick = time.perf_counter()
        overlapped = self._pending is not None
        if overlapped:
            pending, self._pending = self._pending, None
            states = pending.result()
        else:
            model, self._model = self._model, None
            if model is None:
                raise RuntimeError("NegativePhase.samples: start() was not called")
            states = self.sampler.sample(model)
        done = time.perf_counter()
        self.seconds += done - tick
        self.schedule.record(overlapped, done - self._started)
        states = binary_states(states, "sampler.sample()", num_units)
        if states.shape[0] == 0:
            raise ValueError("sampler.sample(): returned no states")
        return self.placement.states(states, dtype)

    def cancel(self) -> None:
        """Drop a started step (the networks failed): wait for the worker, so that the sampler is the
        caller's again (e.g. for a checkpoint), and discard its samples."""
        pending, self._pending, self._model = self._pending, None, None
        if pending is not None:
            try:
                pending.result()
            except BaseException:  # the step is failing already; its own error is the one to report
                pass

    def close(self) -> None:
        """Stop the worker thread (after cancelling a started step)."""
        self.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
