"""Discrete VAEs with Boltzmann-machine (DVAE) and quantum Boltzmann-machine (QVAE) priors, in PyTorch.

The latent prior's negative phase and partition function come from the C++ samplers of qvae_core
(numpy in and out); everything differentiable is torch. Papers: 000 = Khoshaman, Vinci et al.,
"Quantum Variational Autoencoder" (2018); 001 = Vinci et al., "A path towards quantum advantage in
training deep generative models with quantum annealers" (2019).

    smoothing   r(ζ|z): spike-and-exponential, overlapping exponentials, power-function, concrete
    posterior   hierarchical q(z, ζ|x) over G groups
    networks    MLP and gated-convolution encoders/decoders
    priors      Bernoulli, RBM, graph BM (Chimera/Pegasus/Zephyr), each optionally a QBM (gamma > 0)
    samplers    negative phase: persistent chains (Gibbs / CT-QMC) or population annealing
    model       the DVAE and its ELBO / L_{K,D} objective
    evaluation  ELBO, IW log-likelihood with log Z from PA, Q-ELBO and true ELBO, active units
    train       config, builders, resumable trainer;  data: MNIST loaders;  cli: qvae-core commands
    device      the torch device of a run (Placement);  negative_phase: sampling behind the networks

Importing this package does not import torch; the names below load their module on first use.
"""

import importlib

_EXPORTS = {
    "DVAE": "model",
    "HierarchicalPosterior": "posterior",
    "PosteriorSample": "posterior",
    "SMOOTHINGS": "smoothing",
    "BernoulliPrior": "priors",
    "RBMPrior": "priors",
    "GraphPrior": "priors",
    "SAMPLERS": "samplers",
    "PersistentChains": "samplers",
    "PopulationAnnealing": "samplers",
    "evaluate": "evaluation",
    "evaluate_run": "run_evaluation",
    "TrainConfig": "train",
    "Trainer": "train",
    "build_model": "train",
    "load_checkpoint": "train",
    "Dataset": "data",
    "Placement": "device",
    "resolve_device": "device",
    "NegativePhase": "negative_phase",
    "load_dataset": "data",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
