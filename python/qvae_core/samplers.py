"""Persistent chains held in C++ (the negative phase of PCD training).

PersistentSampler is what all of them share: construction, the lock, checkpoint and restore.
GibbsSampler: block Gibbs. An RBM sweep samples h ~ p(h|v), then v ~ p(v|h), each layer as one block;
a BoltzmannMachine sweep visits the colour classes in order (units of a class are conditionally
independent, so each class is one block). quantum.PathIntegralSampler: CT-QMC worldlines of a QBM.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from ._validation import binary_states, checkpoint_parts, fits_in_memory, integer_array, positive_int, seed_value
from ._validation import num_threads as num_threads_arg
from .kinds import core_kind

__all__ = ["PersistentSampler", "GibbsSampler"]


def serialised(method):
    """`method` run holding the sampler's lock (`self._lock`, an RLock). `run` releases the GIL, so
    without it another Python thread could read or replace the chains mid-sweep: a crash, not an
    error. With it, calls from several threads wait for each other."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class PersistentSampler:
    """Base of the samplers whose chains persist in C++ between calls (GibbsSampler,
    PathIntegralSampler): `num_chains` chains of a model, seeded, advanced by `run`, serialised by
    one lock, checkpointed and restored whole. A subclass names the models it takes: `_argument`
    (the name in messages), `_expected` (their description) and `_quantum` (QBMs, or classical
    models); the chains' class comes from kinds.core_kind.
    """

    _argument = "model"
    _expected = "a model"
    _quantum = False
    _extra_checkpoint_keys: tuple = ()  # what a subclass's checkpoint holds besides states and streams

    def __init__(self, model, num_chains: int, *, seed=None, initial_state=None, num_threads=None):
        self._lock = threading.RLock()
        kind = self._kind(model)
        self.num_chains = fits_in_memory(positive_int(num_chains, "num_chains"), model.num_units, "num_chains")
        self.seed = seed_value(seed)
        self.num_threads = num_threads_arg(num_threads)
        self._model = model
        init = None
        if initial_state is not None:
            init = binary_states(initial_state, "initial_state", model.num_units, rows=self.num_chains)
        self._chains = kind.chains(model._compiled, self.num_chains, self.seed, init)

    def _kind(self, model):
        """The CoreKind of `model` if this sampler takes it, else ValueError naming the argument."""
        kind = core_kind(model)
        if kind is None or kind.quantum != self._quantum:
            raise ValueError(f"{self._argument}: expected {self._expected}, got {type(model).__name__}")
        return kind

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
        kind, own = core_kind(model), core_kind(self._model)
        if kind is not own:
            got = type(model).__name__ if kind is None else kind.name
            raise ValueError(f"{self._argument}: expected {own.name} like the sampler's, got {got}")
        try:
            self._chains.set_model(model._compiled)
        except ValueError as exc:  # the core's "model: sizes differ ..."
            raise ValueError(f"{self._argument}: {str(exc).removeprefix('model: ')}") from None
        self._model = model

    @serialised
    def checkpoint(self) -> dict:
        """All that determines the chains' future: `state` (num_chains, n) uint8, the random
        `streams` (num_streams, 64) uint32 and what a subclass adds. `restore` continues from it exactly."""
        return {"state": self.state, "streams": self._chains.streams, **self._extra_checkpoint()}

    def _extra_checkpoint(self) -> dict:
        return {}

    @serialised
    def restore(self, checkpoint) -> None:
        """Continue from a `checkpoint()` of as many chains of as many units: the next runs draw what
        the checkpointed sampler's would have, under this sampler's model (its seed no longer matters).
        A checkpoint that does not fit raises ValueError and changes nothing."""
        keys = ("state", "streams", *self._extra_checkpoint_keys)
        parts = dict(zip(keys, checkpoint_parts(checkpoint, keys)))
        chains = type(self._chains)(self._model._compiled, self.num_chains, self.seed,
                                    binary_states(parts["state"], "checkpoint['state']", self._model.num_units,
                                                  rows=self.num_chains))
        words = integer_array(parts["streams"], "checkpoint['streams']", np.uint32, self._chains.streams.shape)
        try:
            chains.set_streams(words)
        except ValueError as exc:
            raise ValueError(f"checkpoint['streams']: {exc}") from None
        self._restore_extra(chains, parts)
        self._chains = chains

    def _restore_extra(self, chains, parts: dict) -> None:
        """Load the subclass's checkpoint parts (`_extra_checkpoint_keys`) into the new `chains`."""

    def __reduce__(self):
        """Pickles as its model, settings and checkpoint(): the copy continues exactly as this sampler would."""
        with self._lock:
            return _restored, (type(self), self._model, self.num_chains, self.seed, self.num_threads or None,
                               self.checkpoint())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._model!r}, num_chains={self.num_chains}, seed={self.seed})"


def _restored(cls, model, num_chains, seed, num_threads, checkpoint):
    sampler = cls(model, num_chains, seed=seed, num_threads=num_threads)
    sampler.restore(checkpoint)
    return sampler


class GibbsSampler(PersistentSampler):
    """`num_chains` persistent block-Gibbs chains of `model`, an RBM or a BoltzmannMachine;
    `.run(k)` advances all of them by k sweeps.

    Chains start uniformly at random (or at `initial_state`, shape (num_chains, n), 0/1).
    For a given seed the states are bit-identical whatever `num_threads` (None = all cores).
    `run` releases the GIL; calls made from several Python threads wait for each other.
    """

    _expected = "an RBM or a BoltzmannMachine"

    @property
    def model(self):
        """The RBM or BoltzmannMachine the chains sample."""
        return self._model
