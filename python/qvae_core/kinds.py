"""One table from the kind of a model to the core functions that sample it.

A model's kind is the type of its compiled C++ model (`model._compiled`): an RBM, a
BoltzmannMachine, or a QBM on either. The samplers and annealers look their functions up here
instead of asking the model's Python type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import _core

__all__ = ["CoreKind", "core_kind"]


@dataclass(frozen=True)
class CoreKind:
    """The core functions of one kind of compiled model."""

    name: str  # for messages, e.g. "an RBM"
    chains: type  # persistent chains: chains(model, num_chains, seed, initial_state or None)
    anneal: Callable  # population annealing from the kind's exact start (annealing.anneal)
    quantum: bool  # a QBM's path-integral model (else a classical model)
    path_integral: type | None = None  # classical kinds: the path-integral model of a QBM on it
    log_diag: Callable | None = None  # quantum kinds: clamped-slice annealing (annealing.log_diag)


_KINDS = {
    _core.RbmModel: CoreKind("an RBM", _core.RbmChains, _core.anneal_rbm, False, path_integral=_core.QmcRbmModel),
    _core.GraphModel: CoreKind("a BoltzmannMachine", _core.GraphChains, _core.anneal_graph, False,
                               path_integral=_core.QmcGraphModel),
    _core.QmcRbmModel: CoreKind("a QBM of an RBM", _core.QmcRbmChains, _core.anneal_qmc_rbm, True,
                                log_diag=_core.log_diag_qmc_rbm),
    _core.QmcGraphModel: CoreKind("a QBM of a BoltzmannMachine", _core.QmcGraphChains, _core.anneal_qmc_graph, True,
                                  log_diag=_core.log_diag_qmc_graph),
}


def core_kind(model) -> CoreKind | None:
    """The CoreKind of a qvae_core model (RBM, BoltzmannMachine, QBM), None for anything else."""
    return _KINDS.get(type(getattr(model, "_compiled", None)))
