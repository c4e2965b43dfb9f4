"""Evaluation of a trained QAHM (paper 004 Sec. III–IV, Fig. 2).

    bound      the wake-sleep bound G of Eq. 5 with Eq. 4 (Γ = 0: ⟨u|ln ρ|u⟩ = −H(u) − ln Z):
               mean over test images of ln P(v|u) + ln P(u^L), u ~ Q(u|v), with ln Z from population
               annealing of the prior's classical model (qahm.priors: exact for a dense prior, a lower
               bound through the replica map for embedded and gray-box ones); not for a QPU prior
    elbo       the bound of Eq. 3: the bound above minus ln Q(u|v), a lower bound on ln P(v)
    accuracy   test images through the recognition network with the class units unknown (0), the
               most probable class of the generator's P(class | u^1), averaged over draws of u^1
    reconstruction_mse   mean squared pixel error of tanh(A u^1 + a) against the test pixels, u^1 ~ Q
    generated  images from the prior top-down, each beside its nearest training image (Euclidean,
               Fig. 2c–d) and with its most probable class (Fig. 2e)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .data import IMAGE_SHAPE, NUM_CLASSES, one_hot
from .model import HelmholtzMachine

__all__ = ["evaluate", "generate", "write_figures"]


def _mean_and_stderr(values: torch.Tensor) -> tuple[float, float]:
    values = values.double()
    stderr = float(values.std() / math.sqrt(values.numel())) if values.numel() > 1 else math.nan
    return float(values.mean()), stderr


@torch.no_grad()
def evaluate(model: HelmholtzMachine, pixels, labels, *, annealed=None, log_z_population: int = 1000,
             classical: bool = True, class_draws: int = 10, seed: int = 0) -> dict:
    """Metrics on test images: pixels (N, 256) in [−1, 1], labels (N,) 0–9 (module docstring).

    annealed: a population-annealing run of the prior's classical model (prior.anneal()) giving ln Z,
    else one is made with `log_z_population` replicas when `classical` (a QPU-sampled prior has no
    classical ln Z: no bound).
    """
    if not isinstance(model, HelmholtzMachine):
        raise ValueError(f"model: expected a HelmholtzMachine, got {type(model).__name__}")
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.as_tensor(np.asarray(pixels, dtype=np.float32))
    labels = np.asarray(labels, dtype=np.int64)
    classes = torch.from_numpy(one_hot(labels))
    v = model.visible(pixels, classes)
    layers = model.recognize(v, generator)
    metrics: dict = {"num_images": int(pixels.shape[0])}
    if classical:
        if annealed is None:
            annealed = model.prior.anneal(population=log_z_population, seed=seed)
        bound = model.generative_log_prob(pixels, classes, layers) + model.prior.log_prob_bound(layers[-1],
                                                                                                annealed.log_z)
        elbo = bound - model.recognition_log_prob(v, layers)
        metrics["bound"], metrics["bound_stderr"] = _mean_and_stderr(bound)
        metrics["elbo"], metrics["elbo_stderr"] = _mean_and_stderr(elbo)
        metrics["log_z"], metrics["log_z_std"] = float(annealed.log_z), float(annealed.log_z_std)
    unknown = model.visible(pixels, None)
    probabilities = torch.zeros(pixels.shape[0], model.num_classes)
    squared = torch.zeros(())
    for _ in range(class_draws):
        u1 = model.recognize(unknown, generator)[0]
        probabilities += model.class_probabilities(u1) / class_draws
        squared += ((torch.tanh(model.pixels(u1)) - pixels) ** 2).mean() / class_draws
    metrics["accuracy"] = float((probabilities.argmax(1).numpy() == labels).mean())
    metrics["reconstruction_mse"] = float(squared)
    return metrics


@torch.no_grad()
def generate(model: HelmholtzMachine, num_samples: int, *, seed: int = 0, annealed=None):
    """(pixels (N, 256) in [−1, 1], P(class | u^1) (N, 10)) of images drawn top-down from prior samples
    (the final population of `annealed` or of a new population-annealing run of the prior's classical
    model, mapped to u^L by the majority vote)."""
    generator = torch.Generator().manual_seed(seed)
    top = model.prior.sample(num_samples, seed=seed, annealed=annealed)
    layers, pixels, _ = model.generate(top, generator)
    return pixels, model.class_probabilities(layers[0])


def nearest_neighbours(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Index into `reference` of each image's nearest one by Euclidean distance."""
    return torch.cdist(images.double(), reference.double()).argmin(dim=1)


def write_figures(model: HelmholtzMachine, train_pixels, directory, *, num_samples: int = 100, seed: int = 0,
                  annealed=None) -> tuple[list, dict]:
    """samples.png (generated digits), neighbours.png (rows alternate generated digits and their nearest
    training images, Fig. 2c–d) and classes.png (row k: generated digits whose most probable class
    is k, Fig. 2e) in `directory` from max(num_samples, 300) generated digits (prior samples from
    `annealed`, if given, as in generate); returns the paths and a summary of the generated classes."""
    from ..dvae.images import save_grid

    directory = Path(directory)
    pixels, probabilities = generate(model, max(num_samples, 300), seed=seed, annealed=annealed)
    shown = pixels[:num_samples]
    to_unit = lambda x: ((x + 1) / 2).numpy()  # noqa: E731  [-1, 1] -> grey levels in [0, 1]
    columns = min(10, num_samples)
    neighbours = torch.as_tensor(np.asarray(train_pixels))[nearest_neighbours(shown, torch.as_tensor(
        np.asarray(train_pixels)))]
    rows = shown.shape[0] // columns
    pairs = torch.stack([shown[: rows * columns].view(rows, columns, -1),
                         neighbours[: rows * columns].view(rows, columns, -1)], dim=1).flatten(0, 2)
    predicted = probabilities.argmax(1)
    by_class = torch.full((NUM_CLASSES * 10, pixels.shape[1]), -1.0)
    for k in range(NUM_CLASSES):
        members = pixels[predicted == k][:10]
        by_class[k * 10 : k * 10 + members.shape[0]] = members
    paths = [save_grid(to_unit(shown), IMAGE_SHAPE, directory / "samples.png", columns=columns),
             save_grid(to_unit(pairs), IMAGE_SHAPE, directory / "neighbours.png", columns=columns),
             save_grid(to_unit(by_class), IMAGE_SHAPE, directory / "classes.png", columns=10)]
    counts = np.bincount(predicted.numpy(), minlength=NUM_CLASSES)
    return paths, {"generated_class_counts": counts.tolist(),
                   "generated_class_confidence": float(probabilities.max(1).values.mean())}
