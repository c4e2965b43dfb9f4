"""The negative phase of a training step, run behind the networks.

The model samples of a step depend only on the prior's parameters at the start of the step, not on
the encoder or decoder. `NegativePhase.start` takes one host copy of those parameters
(Prior.numpy_model) and, with overlap, hands the sampler's `sample` call to a single background
thread (the C++ samplers release the GIL; a QPU sampler waits on the network); the networks' forward
and backward run meanwhile, and `samples` joins before the prior's gradient is formed. The sampler
draws only from its own random streams and is touched by one thread at a time (the worker between
start and samples, the caller otherwise), so the result is bit-identical to running the two one
after the other (overlap=False).
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from .._validation import binary_states
from .device import Placement

__all__ = ["NegativePhase"]


class NegativePhase:
    """Drives a negative-phase sampler (samplers.py contract) once per step, overlapped or not.

    `seconds` accumulates the time the caller waited for samples: the exposed sampling time
    (all of the sampling when overlap is off).
    """

    def __init__(self, sampler, placement: Placement, *, overlap: bool = True):
        self.sampler = sampler
        self.placement = placement
        self.overlap = overlap
        self.seconds = 0.0
        self._executor = None
        self._pending: Future | None = None
        self._model = None  # the host copy of the prior's parameters (sequential mode)

    def start(self, prior) -> None:
        """Begin the step's sampling from the prior's current parameters."""
        if self._pending is not None or self._model is not None:
            raise RuntimeError("NegativePhase.start: the previous step's samples were not taken")
        model = prior.numpy_model()  # the one host copy of this step
        if not self.overlap:
            self._model = model
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="negative-phase")
        self._pending = self._executor.submit(self.sampler.sample, model)

    def samples(self, num_units: int, dtype: torch.dtype) -> torch.Tensor:
        """The step's model samples, (N, num_units) `dtype` on the run's device (one copy)."""
        tick = time.perf_counter()
        if self._pending is not None:
            pending, self._pending = self._pending, None
            states = pending.result()
        else:
            model, self._model = self._model, None
            if model is None:
                raise RuntimeError("NegativePhase.samples: start() was not called")
            states = self.sampler.sample(model)
        self.seconds += time.perf_counter() - tick
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
