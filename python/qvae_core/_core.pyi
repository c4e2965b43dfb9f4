"""
qvae-core compiled kernels (private; use the qvae_core package)
"""
from __future__ import annotations
import numpy
import numpy.typing
import typing
class RbmModel:
    def __init__(self, weights: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], visible_bias: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], hidden_bias: typing.Annotated[numpy.typing.ArrayLike, numpy.float64]) -> None:
        ...
    def energy(self, states: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8]) -> numpy.typing.NDArray[numpy.float64]:
        """
        E(v,h) = -a.v - b.h - v^T W h for each row of states (float64).
        """
    @property
    def num_units(self) -> int:
        ...
class GraphModel:
    def __init__(self, num_units: typing.SupportsInt | typing.SupportsIndex, bias: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], edges: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], weights: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], colors: typing.Annotated[numpy.typing.ArrayLike, numpy.int32]) -> None:
        ...
    def energy(self, states: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8]) -> numpy.typing.NDArray[numpy.float64]:
        """
        E(z) = -sum_i b_i z_i - sum_k w_k z_i z_j for each row of states (float64).
        """
    @property
    def colors(self) -> numpy.typing.NDArray[numpy.int32]:
        ...
    @property
    def num_units(self) -> int:
        ...
class RbmChains:
    def __init__(self, model: RbmModel, num_chains: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, initial_state: typing.Any) -> None:
        ...
    def run(self, num_sweeps: typing.SupportsInt | typing.SupportsIndex, beta: typing.SupportsFloat | typing.SupportsIndex = 1.0, num_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> int:
        """
        Advances every chain by num_sweeps block-Gibbs sweeps (hidden, then visible).
        """
    def set_model(self, model: RbmModel) -> None:
        ...
    def set_streams(self, streams: typing.Annotated[numpy.typing.ArrayLike, numpy.uint32]) -> None:
        """
        Sets the random streams, (num_streams, 64) uint32, as `streams` gave them.
        """
    @property
    def num_chains(self) -> int:
        ...
    @property
    def num_units(self) -> int:
        ...
    @property
    def state(self) -> numpy.typing.NDArray[numpy.uint8]:
        ...
    @property
    def streams(self) -> numpy.typing.NDArray[numpy.uint32]:
        ...
class GraphChains:
    def __init__(self, model: GraphModel, num_chains: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, initial_state: typing.Any) -> None:
        ...
    def run(self, num_sweeps: typing.SupportsInt | typing.SupportsIndex, beta: typing.SupportsFloat | typing.SupportsIndex = 1.0, num_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> int:
        """
        Advances every chain by num_sweeps sweeps over the colour classes.
        """
    def set_model(self, model: GraphModel) -> None:
        ...
    def set_streams(self, streams: typing.Annotated[numpy.typing.ArrayLike, numpy.uint32]) -> None:
        """
        Sets the random streams, (num_streams, 64) uint32, as `streams` gave them.
        """
    @property
    def num_chains(self) -> int:
        ...
    @property
    def num_units(self) -> int:
        ...
    @property
    def state(self) -> numpy.typing.NDArray[numpy.uint8]:
        ...
    @property
    def streams(self) -> numpy.typing.NDArray[numpy.uint32]:
        ...
class QmcRbmModel:
    def __init__(self, classical: RbmModel, gamma: typing.Annotated[numpy.typing.ArrayLike, numpy.float64]) -> None:
        ...
    @property
    def num_units(self) -> int:
        ...
class QmcGraphModel:
    def __init__(self, classical: GraphModel, gamma: typing.Annotated[numpy.typing.ArrayLike, numpy.float64]) -> None:
        ...
    @property
    def num_units(self) -> int:
        ...
class QmcRbmChains:
    def __init__(self, model: QmcRbmModel, num_chains: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, initial_state: typing.Any) -> None:
        ...
    def run(self, num_sweeps: typing.SupportsInt | typing.SupportsIndex, beta: typing.SupportsFloat | typing.SupportsIndex = 1.0, num_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> int:
        """
        Advances every worldline configuration by num_sweeps cluster sweeps.
        """
    def set_kinks(self, offsets: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], times: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], units: typing.Annotated[numpy.typing.ArrayLike, numpy.int32]) -> None:
        """
        Replaces the kinks of every path (z(0) stays), in the layout of `kinks`.
        """
    def set_model(self, model: QmcRbmModel) -> None:
        ...
    def set_streams(self, streams: typing.Annotated[numpy.typing.ArrayLike, numpy.uint32]) -> None:
        """
        Sets the random streams, (num_streams, 64) uint32, as `streams` gave them.
        """
    @property
    def energy_integrals(self) -> numpy.typing.NDArray[numpy.float64]:
        ...
    @property
    def kink_counts(self) -> numpy.typing.NDArray[numpy.int64]:
        ...
    @property
    def kinks(self) -> tuple[numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.int32]]:
        ...
    @property
    def mean_kinks_per_unit(self) -> float:
        ...
    @property
    def num_chains(self) -> int:
        ...
    @property
    def num_units(self) -> int:
        ...
    @property
    def state(self) -> numpy.typing.NDArray[numpy.uint8]:
        ...
    @property
    def streams(self) -> numpy.typing.NDArray[numpy.uint32]:
        ...
class QmcGraphChains:
    def __init__(self, model: QmcGraphModel, num_chains: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, initial_state: typing.Any) -> None:
        ...
    def run(self, num_sweeps: typing.SupportsInt | typing.SupportsIndex, beta: typing.SupportsFloat | typing.SupportsIndex = 1.0, num_threads: typing.SupportsInt | typing.SupportsIndex = 0) -> int:
        """
        Advances every worldline configuration by num_sweeps cluster sweeps.
        """
    def set_kinks(self, offsets: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], times: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], units: typing.Annotated[numpy.typing.ArrayLike, numpy.int32]) -> None:
        """
        Replaces the kinks of every path (z(0) stays), in the layout of `kinks`.
        """
    def set_model(self, model: QmcGraphModel) -> None:
        ...
    def set_streams(self, streams: typing.Annotated[numpy.typing.ArrayLike, numpy.uint32]) -> None:
        """
        Sets the random streams, (num_streams, 64) uint32, as `streams` gave them.
        """
    @property
    def energy_integrals(self) -> numpy.typing.NDArray[numpy.float64]:
        ...
    @property
    def kink_counts(self) -> numpy.typing.NDArray[numpy.int64]:
        ...
    @property
    def kinks(self) -> tuple[numpy.typing.NDArray[numpy.int64], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.int32]]:
        ...
    @property
    def mean_kinks_per_unit(self) -> float:
        ...
    @property
    def num_chains(self) -> int:
        ...
    @property
    def num_units(self) -> int:
        ...
    @property
    def state(self) -> numpy.typing.NDArray[numpy.uint8]:
        ...
    @property
    def streams(self) -> numpy.typing.NDArray[numpy.uint32]:
        ...
def anneal_graph(model: GraphModel, population: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, sweeps_per_step: typing.SupportsInt | typing.SupportsIndex, schedule: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], target_ess: typing.SupportsFloat | typing.SupportsIndex, num_subpopulations: typing.SupportsInt | typing.SupportsIndex, max_steps: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex, progress: typing.Any = None) -> dict:
    """
    Population annealing from the exact start to the model; returns a dict of the estimate and diagnostics. An empty schedule chooses steps adaptively. progress, if given, is called with the t reached between rounds.
    """
def anneal_qmc_graph(model: QmcGraphModel, population: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, sweeps_per_step: typing.SupportsInt | typing.SupportsIndex, schedule: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], target_ess: typing.SupportsFloat | typing.SupportsIndex, num_subpopulations: typing.SupportsInt | typing.SupportsIndex, max_steps: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex, progress: typing.Any = None) -> dict:
    """
    Population annealing from the exact start to the model; returns a dict of the estimate and diagnostics. An empty schedule chooses steps adaptively. progress, if given, is called with the t reached between rounds.
    """
def anneal_qmc_rbm(model: QmcRbmModel, population: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, sweeps_per_step: typing.SupportsInt | typing.SupportsIndex, schedule: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], target_ess: typing.SupportsFloat | typing.SupportsIndex, num_subpopulations: typing.SupportsInt | typing.SupportsIndex, max_steps: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex, progress: typing.Any = None) -> dict:
    """
    Population annealing from the exact start to the model; returns a dict of the estimate and diagnostics. An empty schedule chooses steps adaptively. progress, if given, is called with the t reached between rounds.
    """
def anneal_rbm(model: RbmModel, population: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, sweeps_per_step: typing.SupportsInt | typing.SupportsIndex, schedule: typing.Annotated[numpy.typing.ArrayLike, numpy.float64], target_ess: typing.SupportsFloat | typing.SupportsIndex, num_subpopulations: typing.SupportsInt | typing.SupportsIndex, max_steps: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex, progress: typing.Any = None) -> dict:
    """
    Population annealing from the exact start to the model; returns a dict of the estimate and diagnostics. An empty schedule chooses steps adaptively. progress, if given, is called with the t reached between rounds.
    """
def greedy_coloring(num_units: typing.SupportsInt | typing.SupportsIndex, edges: typing.Annotated[numpy.typing.ArrayLike, numpy.int64]) -> numpy.typing.NDArray[numpy.int32]:
    """
    Proper colouring by DSatur: two colours for bipartite graphs, few otherwise (Pegasus: 4).
    """
def log_diag_qmc_graph(model: QmcGraphModel, states: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8], population: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, sweeps_per_step: typing.SupportsInt | typing.SupportsIndex, target_ess: typing.SupportsFloat | typing.SupportsIndex, num_subpopulations: typing.SupportsInt | typing.SupportsIndex, max_steps: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex, progress: typing.Any = None) -> dict:
    """
    log <z|e^{-H}|z> per row of states by clamped-slice population annealing. progress, if given, is called with the number of states finished between rounds.
    """
def log_diag_qmc_rbm(model: QmcRbmModel, states: typing.Annotated[numpy.typing.ArrayLike, numpy.uint8], population: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, sweeps_per_step: typing.SupportsInt | typing.SupportsIndex, target_ess: typing.SupportsFloat | typing.SupportsIndex, num_subpopulations: typing.SupportsInt | typing.SupportsIndex, max_steps: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex, progress: typing.Any = None) -> dict:
    """
    log <z|e^{-H}|z> per row of states by clamped-slice population annealing. progress, if given, is called with the number of states finished between rounds.
    """
def max_threads() -> int:
    """
    Number of threads the samplers use when num_threads is not given.
    """
MAX_GAMMA: float = 500.0
