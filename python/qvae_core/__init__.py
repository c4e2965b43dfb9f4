"""qvae-core: fast samplers for Boltzmann-machine and quantum Boltzmann-machine priors.

Conventions (docs/conventions.md): binary units z in {0,1}, p(z) = exp(-E(z)) / Z,
E(z) = -sum_i b_i z_i - sum_(ij) w_ij z_i z_j; an RBM state is [v, h].
"""

try:
    from . import _core
except ImportError as exc:  # pragma: no cover - only when the build is broken
    raise ImportError(
        "qvae_core._core (the compiled extension) could not be imported; reinstall the package "
        "with `pip install .` from a source checkout or a wheel for this platform"
    ) from exc

from . import embedding, exact, graphs
from .annealing import AnnealResult, anneal, combine_log_z, log_diag
from .models import RBM, BoltzmannMachine
from .quantum import QBM, PathIntegralSampler
from .samplers import GibbsSampler

__version__ = "0.1.0"

__all__ = [
    "RBM",
    "BoltzmannMachine",
    "QBM",
    "PathIntegralSampler",
    "log_diag",
    "GibbsSampler",
    "anneal",
    "AnnealResult",
    "combine_log_z",
    "embedding",
    "exact",
    "graphs",
    "max_threads",
    "__version__",
]


def max_threads() -> int:
    """Number of threads the samplers use by default (all hardware threads)."""
    return _core.max_threads()
