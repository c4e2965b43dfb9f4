"""Evaluation of a trained DVAE/QVAE: ELBO, importance-weighted log-likelihood, QBM bounds, active units.

    ELBO  mean over images of log w, one draw per image, log w = log p(x|ζ) + log p(z) - log q(z|x)
          (r(ζ|z) cancels), log p(z) = -E(z) - log Z with log Z from population annealing;
    LL    mean over images of log (1/K) Σ_k w_k (Burda et al.; paper 000 used K = 30,000, paper 001
          K = 1000), which rises towards log p(x) as K grows; its uncertainty is the standard
          error over images plus the standard error of log Z, which shifts every image alike;
    QBM   the Q-ELBO uses log p̃(z) = -E(z) - log Z (paper 000 Eq. 35); the true ELBO uses
          log p(z) = log <z|e^{-H}|z> - log Z from qvae_core.log_diag (paper 000 Eq. E4);
    active units: units whose conditional probability q_l varies across images with variance > 0.01
          (paper 001).
"""

from __future__ import annotations

import math

import numpy as np
import torch

import qvae_core as q

from .._validation import binary_states, finite_array, positive_int, seed_value
from ..annealing import LOG_Z_POPULATION, MIN_POPULATION
from .model import DVAE

__all__ = ["evaluate", "ACTIVE_UNIT_VARIANCE"]

ACTIVE_UNIT_VARIANCE = 0.01
_ROWS_PER_CHUNK = 20_000  # images x samples per forward pass


def _mean_and_stderr(values: np.ndarray) -> tuple[float, float]:
    stderr = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else math.nan
    return float(values.mean()), stderr


@torch.no_grad()
def evaluate(
    model: DVAE,
    images,
    *,
    importance_samples: int = 1000,
    log_z: tuple[float, float] | None = None,
    log_z_population: int = LOG_Z_POPULATION,
    true_elbo: bool = True,
    log_diag_population: int = 200,
    seed: int = 0,
    client=None,
) -> dict:
    """Metrics on `images` ((N, pixels) 0/1); `log_z` = (log Z, its standard error) if already known.

    importance_samples K >= 1 draws per image (K = 1: ELBO only). For a QBM prior (gamma > 0) the
    result has `q_elbo`, and `elbo` from log_diag if true_elbo, from one draw per image; the LL is
    left out (it would need log_diag for every one of the K draws). With a dask.distributed `client`
    the log Z runs go to its workers (Prior.log_partition).
    """
    if not isinstance(model, DVAE):
        raise ValueError(f"model: expected a DVAE, got {type(model).__name__}")
    importance_samples = positive_int(importance_samples, "importance_samples")
    seed = seed_value(seed) % 2**63  # torch generators take signed 64-bit seeds
    for name, population in (("log_z_population", log_z_population), ("log_diag_population", log_diag_population)):
        positive_int(population, name, minimum=MIN_POPULATION)
    if log_z is not None:
        pair = finite_array(log_z, "log_z", ndim=1, shape=(2,))
        if pair[1] < 0:
            raise ValueError(f"log_z: expected (log Z, its standard error >= 0), got {tuple(pair)}")
        log_z = (float(pair[0]), float(pair[1]))
    images = torch.as_tensor(binary_states(images, "images", model.num_pixels), dtype=next(model.parameters()).dtype)
    if images.shape[0] < 1:
        raise ValueError("images: expected (N, pixels) with N >= 1, got none")
    was_training = model.training
    model.eval()
    prior = model.prior
    quantum = prior.gamma > 0
    if quantum:
        importance_samples = 1
    if log_z is None:
        log_z = prior.log_partition(population=log_z_population, seed=seed, client=client)
    log_z, log_z_std = log_z
    generator = torch.Generator().manual_seed(seed)
    chunk = max(1, _ROWS_PER_CHUNK // importance_samples)
    rest, energy, iw, first_z, probs = [], [], [], [], []  # first-draw terms per image, IW bound, states
    for start in range(0, images.shape[0], chunk):
        d = model.draws(images[start : start + chunk], importance_samples, generator)
        e = prior.energy(d.z.flatten(0, 1)).view_as(d.log_px)  # (K, b)
        iw.append(torch.logsumexp(d.log_px - d.log_q - e - log_z, 0) - math.log(importance_samples))
        rest.append((d.log_px - d.log_q)[0])
        energy.append(e[0])
        first_z.append(d.z[0])
        probs.append(d.probs)
    model.train(was_training)

    rest, energy, probs = (torch.cat(t).double().numpy() for t in (rest, energy, probs))
    variance = probs.var(axis=0, ddof=1) if len(probs) > 1 else np.zeros(probs.shape[1])
    metrics = {
        "num_images": int(images.shape[0]),
        "log_z": float(log_z),
        "log_z_std": float(log_z_std),
        "active_units": int((variance > ACTIVE_UNIT_VARIANCE).sum()),
        "num_latent": int(probs.shape[1]),
    }
    classical_bound = _mean_and_stderr(rest - energy - log_z)  # the ELBO, or a QBM's Q-ELBO
    if not quantum:
        metrics["elbo"], metrics["elbo_stderr"] = classical_bound
        metrics["importance_samples"] = importance_samples
        metrics["ll"], metrics["ll_stderr"] = _mean_and_stderr(torch.cat(iw).double().numpy())
        return metrics
    metrics["gamma"] = prior.gamma
    metrics["q_elbo"], metrics["q_elbo_stderr"] = classical_bound
    if true_elbo:
        states = torch.cat(first_z).to(torch.uint8).numpy()
        log_diag, log_diag_std = q.log_diag(prior.numpy_model(), states, population=log_diag_population, seed=seed)
        metrics["elbo"], metrics["elbo_stderr"] = _mean_and_stderr(rest + log_diag - log_z)
        metrics["elbo_log_diag_stderr"] = float(np.sqrt(np.sum(log_diag_std**2)) / len(log_diag))
    return metrics
