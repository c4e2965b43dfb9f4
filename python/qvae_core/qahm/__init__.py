"""The quantum-assisted Helmholtz machine (QAHM) of paper 004 (Benedetti et al. 2018,
"Quantum-assisted Helmholtz machines: a quantum-classical deep learning framework for industrial
datasets in near-term devices"), in PyTorch.

    data        USPS 16 × 16 grey digits and their classes (a subset ships in the package)
    model       recognition Q(u|v) and generator P(v|u) networks of ±1 sigmoid layers (Eq. 10–14)
    priors      the deepest layer's prior: a dense BM, the same through a minor embedding (classical
                emulation or a QPU), or the gray-box physical model (Eq. 19–21)
    train       wake-sleep (Algorithm 1) with the paper's schedule, checkpoints and exact resume
    evaluation  the wake-sleep bound (Eq. 5) with ln Z from population annealing, test accuracy,
                reconstruction error, generated digits beside their nearest training images
    cli         `qvae-core qahm train | evaluate | sample`

Importing this package does not import torch; the names below load their module on first use.
"""

import importlib

_EXPORTS = {
    "QAHMConfig": "config",
    "QUICK": "config",
    "USPS": "data",
    "load_usps": "data",
    "HelmholtzMachine": "model",
    "DensePrior": "priors",
    "GrayBoxPrior": "priors",
    "Trainer": "train",
    "wake_sleep_losses": "train",
    "build_model": "train",
    "load_checkpoint": "train",
    "evaluate": "evaluation",
    "generate": "evaluation",
    "write_figures": "evaluation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
