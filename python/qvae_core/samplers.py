"""Persistent block-Gibbs chains held in C++ (the negative phase of PCD training).

RBM: a sweep samples h ~ p(h|v), then v ~ p(v|h), each layer as one block.
BoltzmannMachine: a sweep visits the colour classes in order; units of a class are
conditionally independent, so each class is one block.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from . import _core
from ._validation import binary_states, checkpoint_parts, fits_in_memory, integer_array, positive_int, seed_value
from ._validation import num_threads as num_threads_arg
from .models import RBM, BoltzmannMachine

__all__ = ["GibbsSampler"]


def serialised(method):
    """`method` run holding the sampler's lock (`self._lock`, an RLock). `run` releases the GIL, so
    without it another Python thread could read or replace the chains mid-sweep: a crash, not an
    error. With it, calls from several threads wait for each other."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class GibbsSampler:
    """`num_chains` persistent chains of `model`; `.run(k)` advances all of them by k sweeps.

    Chains start uniformly at random (or at `initial_state`, shape (num_chains, n), 0/1).
    For a given seed the states are bit-identical whatever `num_threads` (None = all cores).
    `run` releases the GIL; calls made from several Python threads wait for each other.
    """

    def __init__(self, model, num_chains: int, *, seed=None, initial_state=None, num_threads=None):
        self._lock = threading.RLock()
        self._check_model(model)
        self.num_chains = fits_in_memory(positive_int(num_chains, "num_chains"), model.num_units, "num_chains")
        self.seed = seed_value(seed)
        self.num_threads = num_threads_arg(num_threads)
        self.model = model
        init = None
        if initial_state is not None:
            init = binary_states(initial_state, "initial_state", model.num_units, rows=self.num_chains)
        chains_type = _core.RbmChains if isinstance(model, RBM) else _core.GraphChains
        self._chains = chains_type(model._compiled, self.num_chains, self.seed, init)

    @serialised
    def checkpoint(self) -> dict:
        """All that determines the chains' future: `state` (num_chains, n) uint8 and the random
        `streams` (num_streams, 64) uint32. `restore` continues from it exactly."""
        return {"state": self.state, "streams": self._chains.streams}

    @serialised
    def restore(self, checkpoint) -> None:
        """Continue from a `checkpoint()` of as many chains of as many units: the next runs draw what
        the checkpointed sampler's would have, under this sampler's model (its seed no longer matters)."""
        self._chains = _restored_chains(self._chains, self.model._compiled, self.seed, checkpoint)

    @staticmethod
    def _check_model(model):
        if not isinstance(model, (RBM, BoltzmannMachine)):
            raise ValueError(f"model: expected an RBM or a BoltzmannMachine, got {type(model).__name__}")

    @serialised
    def run(self, num_sweeps: int) -> np.ndarray:
        """Advance every chain by num_sweeps sweeps; returns the new (num_chains, n) uint8 states.

        Ctrl-C stops between rounds of sweeps (every chain at the same count) and raises
        KeyboardInterrupt; the chains keep what they reached.
        """
        num_sweeps = positive_int(num_sweeps, "num_sweeps", minimum=0)
        self._chains.run(num_sweeps, 1.0, self.num_threads)
        return self.state

    @property
    @serialised
    def state(self) -> np.ndarray:
        """A copy of the current states, (num_chains, num_units) uint8."""
        return self._chains.state

    @serialised
    def set_model(self, model) -> None:
        """Continue the same chains under new parameters (same kind and size of model)."""
        if type(model) is not type(self.model):
            raise ValueError(f"model: expected a {type(self.model).__name__} like the sampler's, got {type(model).__name__}")
        self._chains.set_model(model._compiled)  # the core checks the sizes (ValueError "model: ...")
        self.model = model

    def __repr__(self) -> str:
        return f"GibbsSampler({self.model!r}, num_chains={self.num_chains}, seed={self.seed})"


def _restored_chains(chains, compiled_model, seed: int, checkpoint):
    """New chains like `chains` (of `compiled_model`) with the states and streams of `checkpoint`."""
    state, streams = checkpoint_parts(checkpoint, ("state", "streams"))
    restored = type(chains)(compiled_model, chains.num_chains, seed,
                            binary_states(state, "checkpoint['state']", chains.num_units, rows=chains.num_chains))
    words = integer_array(streams, "checkpoint['streams']", np.uint32, chains.streams.shape)
    try:
        restored.set_streams(words)
    except ValueError as exc:
        raise ValueError(f"checkpoint['streams']: {exc}") from None
    return restored
