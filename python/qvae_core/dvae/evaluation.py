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

At the papers' scale (K = 30,000 draws for each of 10,000 images) the work is done in passes of at
most 20,000 draws (images x samples), so memory does not grow with K or N. Image i's draws come in
blocks of 1,000 from the stream derived_seed(seed, EvaluationStream.DRAWS, i, block): an image's
numbers depend only on (seed, its index in the split, K), whichever passes, processes or resumed
runs compute them; under torchrun (`ranks`) each rank draws those of its block of images and rank 0
gathers them, so the numbers equal one process's. With `partial=path` the per-image results are
saved there atomically (every minute, and when interrupted) and a later call with the same settings
continues from them.
run_evaluation.evaluate_run evaluates a saved run on a split and writes evaluation-SPLIT-K..-seed...json.
"""


from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import qvae_core as q

from .._training import atomic_file
from .._validation import binary_states, finite_array, positive_int, seed_value
from ..annealing import LOG_Z_POPULATION, MIN_POPULATION
from ..seeds import EvaluationStream, derived_seed, torch_seed
from .distributed import SINGLE, Ranks
from .model import DVAE

__all__ = ["evaluate", "draw_noise", "ACTIVE_UNIT_VARIANCE", "SAMPLE_BLOCK"]

ACTIVE_UNIT_VARIANCE = 0.01
SAMPLE_BLOCK = 1000  # draws of one image per random stream
_ROWS_PER_PASS = 20_000  # images x samples per forward pass
_SAVE_SECONDS = 60.0  # between saves of the partial results
_TERMS = ("iw", "rest", "energy", "probs", "first_z")  # per image: log mean_k w_k, first draw's terms


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
    first_image: int = 0,
    partial=None,
    progress: bool = False,
    client=None,
    ranks: Ranks = SINGLE,
) -> dict:
    """Metrics on `images` ((N, pixels) 0/1); `log_z` = (log Z, its standard error) if already known.

    importance_samples K >= 1 draws per image (K = 1: ELBO only). For a QBM prior (gamma > 0) the
    result has `q_elbo`, and `elbo` from log_diag if true_elbo, from one draw per image; the LL is
    left out (it would need log_diag for every one of the K draws). `first_image` is the index of
    images[0] in its split (its draws' stream; a part of a split evaluated apart gives the numbers
    of the whole). `partial`: a file (.npz) to save per-image results in and resume from; it is
    left complete at the end. `progress`: a tqdm bar over images x K on stderr.
    With a dask.distributed `client` the log Z runs go to its workers (Prior.log_partition).
    Under torchrun every rank calls it with the same arguments and `ranks` (distributed.Ranks): each
    draws for its block of the images (and needs its own `partial` file: Ranks.partial_name), log Z
    and the metrics are rank 0's, and every rank returns them.
    """
    if not isinstance(model, DVAE):
        raise ValueError(f"model: expected a DVAE, got {type(model).__name__}")
    importance_samples = positive_int(importance_samples, "importance_samples")
    first_image = positive_int(first_image, "first_image", minimum=0)
    seed = seed_value(seed)
    for name, population in (("log_z_population", log_z_population), ("log_diag_population", log_diag_population)):
        positive_int(population, name, minimum=MIN_POPULATION)
    if log_z is not None:
        pair = finite_array(log_z, "log_z", ndim=1, shape=(2,))
        if pair[1] < 0:
            raise ValueError(f"log_z: expected (log Z, its standard error >= 0), got {tuple(pair)}")
        log_z = (float(pair[0]), float(pair[1]))
    parameter = next(model.parameters())  # the model's device and dtype
    images = torch.as_tensor(binary_states(images, "images", model.num_pixels), dtype=parameter.dtype,
                             device=parameter.device)
    if images.shape[0] < 1:
        raise ValueError("images: expected (N, pixels) with N >= 1, got none")
    prior = model.prior
    quantum = prior.gamma > 0
    if quantum:
        importance_samples = 1
    if log_z is None and ranks.world_size > 1:  # one log Z for every rank's images: rank 0's run
        log_z = ranks.from_main(lambda: prior.log_partition(
            population=log_z_population, seed=derived_seed(seed, EvaluationStream.LOG_Z), client=client))
    lo, hi = ranks.share(images.shape[0])
    images, first_image = images[lo:hi], first_image + lo
    partial = None if partial is None else Path(partial)
    weights = (v.detach().cpu().numpy() for v in model.state_dict().values())
    settings = {"importance_samples": importance_samples, "seed": seed, "first_image": first_image,
                "log_z_population": log_z_population, "given_log_z": log_z, "log_z_on_client": client is not None,
                "images": _digest(images.cpu().numpy()), "model": _digest(*weights)}
    state = _load_partial(partial, settings) if partial is not None and partial.exists() else None
    if state is None:
        if log_z is None:
            log_z = prior.log_partition(population=log_z_population, seed=derived_seed(seed, EvaluationStream.LOG_Z),
                                          client=client)
        n, m = images.shape[0], prior.num_units
        state = {"done": 0, "log_z": np.array(log_z, float), "iw": np.zeros(n), "rest": np.zeros(n),
                 "energy": np.zeros(n), "probs": np.zeros((n, m), np.float32), "first_z": np.zeros((n, m), np.uint8)}
    was_training = model.training
    model.eval()
    try:
        _draw_terms(model, images, state, importance_samples, seed, first_image, partial, settings,
                    progress and ranks.main)
    finally:
        model.train(was_training)
    terms = ranks.gather_rows({key: state[key] for key in _TERMS})  # on rank 0, every image's
    return ranks.from_main(lambda: _summary(model, {**state, **terms}, importance_samples, true_elbo,
                                            log_diag_population, seed))


def _draw_terms(model, images, state, k, seed, first_image, partial, settings, progress) -> None:
    """Fill state's per-image terms from image state["done"] on, saving to `partial` as it goes."""
    n = images.shape[0]
    block = min(k, SAMPLE_BLOCK)
    per_pass = max(1, _ROWS_PER_PASS // block)  # images in each pass, `block` draws of each
    log_z = float(state["log_z"][0])
    last_save = time.monotonic()
    bar = tqdm(total=n * k, initial=state["done"] * k, unit="draw", unit_scale=True, desc="evaluation",
               disable=not progress, dynamic_ncols=True)
    try:
        while state["done"] < n:
            lo = state["done"]
            x = images[lo : lo + per_pass]
            log_sum = torch.full((x.shape[0],), -math.inf, dtype=torch.float64, device=x.device)
            for b, start in enumerate(range(0, k, block)):
                size = min(block, k - start)
                noise = torch.stack([draw_noise(seed, first_image + i, b, size, model.prior.num_units, x.dtype)
                                     for i in range(lo, lo + x.shape[0])], dim=2).flatten(1, 2).to(x.device)  # (2, size·B, n)
                d = model.draws(x, size, noise=noise)
                e = model.prior.energy(d.z.flatten(0, 1)).view_as(d.log_px)  # (size, B)
                log_w = (d.log_px - d.log_q - e).double() - log_z
                log_sum = torch.logaddexp(log_sum, torch.logsumexp(log_w, 0))
                if b == 0:
                    _put(state, lo, rest=(d.log_px - d.log_q)[0], energy=e[0], probs=d.probs, first_z=d.z[0])
                bar.update(size * x.shape[0])
            _put(state, lo, iw=log_sum - math.log(k))
            state["done"] = lo + x.shape[0]
            if partial is not None and time.monotonic() - last_save >= _SAVE_SECONDS:
                _save_partial(Path(partial), state, settings)
                last_save = time.monotonic()
    finally:
        bar.close()
        if partial is not None:  # also when interrupted: the finished images are kept
            _save_partial(Path(partial), state, settings)


def draw_noise(seed: int, image: int, block: int, size: int, units: int, dtype=torch.float32) -> torch.Tensor:
    """(2, size, units) uniforms of draws block·SAMPLE_BLOCK ... + size of image `image` (its index in
    the split) from stream derived_seed(seed, EvaluationStream.DRAWS, image, block); DVAE.draws' noise."""
    generator = torch.Generator().manual_seed(torch_seed(seed, EvaluationStream.DRAWS, image, block))
    return torch.rand((2, size, units), generator=generator, dtype=dtype)


def _put(state, lo, **terms) -> None:
    for key, value in terms.items():
        state[key][lo : lo + value.shape[0]] = value.detach().cpu().numpy()


def _summary(model, state, k, true_elbo, log_diag_population, seed) -> dict:
    prior = model.prior
    log_z, log_z_std = (float(v) for v in state["log_z"])
    probs = state["probs"].astype(np.float64)
    variance = probs.var(axis=0, ddof=1) if len(probs) > 1 else np.zeros(probs.shape[1])
    metrics = {
        "num_images": int(len(probs)),
        "log_z": log_z,
        "log_z_std": log_z_std,
        "active_units": int((variance > ACTIVE_UNIT_VARIANCE).sum()),
        "num_latent": int(probs.shape[1]),
    }
    classical_bound = _mean_and_stderr(state["rest"] - state["energy"] - log_z)  # the ELBO, or a QBM's Q-ELBO
    if prior.gamma == 0:
        metrics["elbo"], metrics["elbo_stderr"] = classical_bound
        metrics["importance_samples"] = k
        metrics["ll"], metrics["ll_stderr"] = _mean_and_stderr(state["iw"])
        return metrics
    metrics["gamma"] = prior.gamma
    metrics["q_elbo"], metrics["q_elbo_stderr"] = classical_bound
    if true_elbo:
        log_diag, log_diag_std = q.log_diag(prior.numpy_model(), state["first_z"], population=log_diag_population,
                                            seed=derived_seed(seed, EvaluationStream.LOG_DIAG))
        metrics["elbo"], metrics["elbo_stderr"] = _mean_and_stderr(state["rest"] + log_diag - log_z)
        metrics["elbo_log_diag_stderr"] = float(np.sqrt(np.sum(log_diag_std**2)) / len(log_diag))
    return metrics


def _digest(*arrays) -> str:
    sha = hashlib.sha256()
    for a in arrays:
        sha.update(np.ascontiguousarray(a).tobytes())
    return sha.hexdigest()


def _save_partial(path: Path, state, settings) -> None:
    """Write the per-image results atomically (a temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as f:
        np.savez(f, settings=json.dumps(settings), **{key: np.asarray(value) for key, value in state.items()})


def _load_partial(path: Path, settings) -> dict:
    try:
        with np.load(path, allow_pickle=False) as archive:
            saved = {key: archive[key] for key in archive.files}
        saved_settings = json.loads(str(saved.pop("settings")))
        saved["done"] = int(saved["done"])
    except Exception as exc:  # numpy and zipfile raise several types for damaged files
        raise ValueError(f"partial: {path} could not be read ({type(exc).__name__}: {exc}); remove it") from None
    differ = sorted(key for key in settings if saved_settings.get(key) != json.loads(json.dumps(settings[key])))
    if differ or set(saved) != {"done", "log_z", *_TERMS}:
        raise ValueError(f"partial: {path} holds an evaluation with other settings ({', '.join(differ) or 'layout'}); "
                         "remove it to start afresh")
    return saved
