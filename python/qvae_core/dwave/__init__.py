"""D-Wave QPU adapter (dwave-cloud-client) and a local SAPI server (extra `dwave`).

QPUSampler draws negative-phase samples of a BoltzmannMachine on a solver's working graph with
spin-reversal transforms, anneal schedules and an effective temperature (paper 001, Sec. II-III,
App. B-C); SAPIServer serves the Solver API subset the client uses, answering with Boltzmann
samples, for offline development and tests. dwave-cloud-client is imported only when a client
is made, so this package (and `qvae-core sapi-server`) works without it.
"""

from .beta import AppendixC, BetaEstimate, PseudoLikelihood, appendix_c_update, estimate_beta_pseudolikelihood
from .hardware import PauseAndQuench, max_num_reads, validate_anneal_schedule, working_graph
from .sampler import ClippingWarning, QPUSampler, QPUSamplingError
from .faults import FAULTS
from .server import SAPIServer, default_solvers
from .solvers import qpu_solver

__all__ = [
    "QPUSampler",
    "QPUSamplingError",
    "ClippingWarning",
    "working_graph",
    "PauseAndQuench",
    "validate_anneal_schedule",
    "max_num_reads",
    "BetaEstimate",
    "estimate_beta_pseudolikelihood",
    "appendix_c_update",
    "PseudoLikelihood",
    "AppendixC",
    "SAPIServer",
    "FAULTS",
    "default_solvers",
    "qpu_solver",
]
