"""The papers' experiments as named run configurations (`qvae-core train --preset NAME`).

Each preset sets every TrainConfig field that one row of a paper's table fixes, cites the row, and
keeps the numbers the paper printed for it, so `qvae-core experiments --table ...` can set ours
beside them. Papers (../shared/papers of the project):

    paper 000  Khoshaman, Vinci et al. 2018, "Quantum Variational Autoencoder": Sec. IV C (DVAE
               set-up), Table I (DVAE, RBM priors), Sec. V and Table II (QVAE, QBM priors);
    paper 001  Vinci et al. 2019, a QVAE trained with D-Wave 2000Q annealers: Sec. III, Table I and
               App. A (convolutional VAE, L_{K,D}).

Where a paper does not print a value a row needs, the preset takes the one named in `unprinted`
with the reason; nothing else is a choice of ours. Presets name no data file: paper 000 used
statically binarised MNIST (binarized_mnist.npz), paper 001 grey-level MNIST binarised afresh at
each use (the IDX files), and `data` says which. This module does not import torch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

__all__ = ["Preset", "PRESETS", "TABLES", "PaperTable", "preset", "preset_values", "row_values", "ROWS"]

STATIC_MNIST = "statically binarised MNIST (binarized_mnist.npz)"
DYNAMIC_MNIST = "MNIST grey levels, binarised afresh at each use (the IDX files)"


@dataclass(frozen=True)
class Preset:
    """values: TrainConfig fields; reported: metric -> the paper's number as printed; unprinted:
    field -> why the preset's value is ours where the paper prints none."""

    name: str
    source: str
    values: dict
    reported: dict
    data: str
    unprinted: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PaperTable:
    """A table of a paper: its rows (preset names), the split and metrics it reports, and the number
    of seeds (training runs) per row it averaged."""

    name: str
    caption: str
    rows: tuple
    split: str
    metrics: tuple
    seeds: int = 1


# --- paper 000, Sec. IV C: the DVAE set-up common to Tables I and II ---
_PAPER000 = {
    "prior": "rbm", "gamma": 0.0,
    "groups": 8,  # "8 levels of hierarchies"
    "encoder": "mlp", "encoder_hidden": [2000, 2000],  # "two hidden ReLU layers containing 2000 deterministic units"
    "smoothing": "spike-exp", "beta_start": 1.0, "beta_end": 10.0,  # Eq. 22, "annealed ... from 1.0 to 10"
    "batch_size": 200, "lr": 1e-3,  # "batch size of 200", "ADAM ... learning rate of 10^-3"
    "lr_decay": 1.0, "min_lr": 1e-3,
    "kl_warmup_epochs": 0.0, "kd_schedule": [[1, 1]], "kd_epochs": 200,  # the ELBO
    "sampler": "pcd", "negative_samples": 1000, "sweeps": 200,  # "PCD, with 1000 chains and 200 block-Gibbs updates"
}
_PAPER000_UNPRINTED = {
    "decoder_hidden": "one ReLU layer of 250-2000 units, fewer for larger RBMs (Sec. IV C); the size per "
                      "row is not printed: 2000 / 1000 / 500 / 250 for 16-32 / 64 / 128 / 256 units per layer",
    "lr_decay": "exponential decay, rate not printed: none (the constant 10^-3 printed)",
}
# one ReLU decoder layer, fewer units for larger RBMs (within the printed 250-2000)
_DECODER = {16: 2000, 32: 2000, 64: 1000, 128: 500, 256: 250}
_TABLE_I = {32: ("-99.3 ± 0.2", "-90.8 ± 0.2"), 64: ("-92.4", "-85.5"), 128: ("-90.4", "-84.7"),
            256: ("-89.2", "-83.5")}
_TABLE_II = {  # units per layer -> epochs, {Γ: (ELBO, Q-ELBO)}
    16: (800, {0: ("-109.3 ± 0.2", "-109.3 ± 0.2"), 1: ("-110.5", "-120.6"), 2: ("-115.3", "-135.8")}),
    32: (250, {0: ("-101.8", "-101.8"), 1: ("-103.6", "-117.9"), 2: ("-112.1", "-139.7")}),
    64: (50, {0: ("-105.7", "-105.7"), 1: ("-108.7", "-133.9"), 2: ("-120.0", "-165.2")}),
}


def _paper000_table_i() -> list:
    return [
        Preset(
            name=f"paper000-I-rbm{n}x{n}",
            source=f"paper 000, Table I, row DVAE RBM {n}x{n} (set-up: Sec. IV C)",
            values={**_PAPER000, "latent": f"{n}x{n}", "decoder_hidden": [_DECODER[n]], "epochs": 2000,
                    "final_importance_samples": 30_000},  # "during 2000 epochs"; "30000 samples ... per input image"
            reported={"elbo": elbo, "ll": ll},
            data=STATIC_MNIST,
            unprinted=_PAPER000_UNPRINTED,
        )
        for n, (elbo, ll) in _TABLE_I.items()
    ]


def _paper000_table_ii() -> list:
    presets = []
    for n, (epochs, rows) in _TABLE_II.items():
        for gamma, (elbo, q_elbo) in rows.items():
            presets.append(Preset(
                name=f"paper000-II-qbm{n}x{n}-gamma{gamma}",
                source=f"paper 000, Table II, row {'RBM' if gamma == 0 else 'QBM'} {n}x{n} Gamma = {gamma} "
                       f"({epochs} epochs; set-up: Sec. IV C and V)",
                # "exactly the same models used in the case of DVAEs"; negative phase by "population
                # annealing (PA) for CT-QMC ... a population of 1000 samples and 5 sweeps per gradient"
                values={**_PAPER000, "latent": f"{n}x{n}", "gamma": float(gamma), "decoder_hidden": [_DECODER[n]],
                        "sampler": "pa", "negative_samples": 1000, "sweeps": 5, "epochs": epochs},
                reported={"elbo": elbo, "q_elbo": q_elbo},
                data=STATIC_MNIST,
                unprinted={**_PAPER000_UNPRINTED,
                           "beta_end": "the runs stopped at 800 / 250 / 50 epochs of a schedule not printed for "
                                       "them: beta rises from 1 to 10 over the preset's epochs"},
            ))
    return presets


# --- paper 001, Sec. III and App. A: the convolutional VAE of Table I ---
_PAPER001 = {
    "encoder": "conv", "encoder_hidden": [144, 144], "decoder_hidden": [],  # Fig. 12(c): dense1 = 144 144
    "groups": 2,  # Sec. III B, Fig. 7: "the two hierarchical groups (z1, z2)"
    "smoothing": "concrete", "beta_start": 7.0, "beta_end": 7.0,  # "we fixed ... tau = 1/7 throughout the training"
    "batch_size": 100,  # App. A: "batches of size 100" (Sec. III: "typically ... a batch size of 1000")
    # "initial learning rate of 3e-3, exponentially decaying to a minimum learning rate of 1e-4 after 1800 epochs"
    "lr": 3e-3, "lr_decay": (1e-4 / 3e-3) ** (1 / 1800), "min_lr": 1e-4,
    "kl_warmup_epochs": 200.0,  # "linearly annealed the KL term from zero to its full value within 200 epochs"
    # "Every 200 epochs ... (K,D) = (1, 8) -> (2, 4) -> (2, 4) -> (4, 2) -> (4, 2) -> (8, 1)"
    "kd_schedule": [[1, 8], [2, 4], [2, 4], [4, 2], [4, 2], [8, 1]], "kd_epochs": 200,
    "epochs": 2000,  # Table I: "trained independently for 2000 epochs"
    "final_importance_samples": 1000,  # App. A: "K = 1000, D = 1 as the estimate of the log-likelihood"
    "gamma": 0.0,
}
_PAPER001_UNPRINTED = {
    "negative_samples": "the population of the PA runs is not printed: 1000 (the QPU's samples per gradient, "
                        "App. B, and paper 000's PA population)",
    "sweeps": "sweeps per annealing step not printed: 5 (paper 000's PA)",
    "groups": "the mapping of the two groups onto the Chimera qubits ('Bipartite' or 'Chains', Fig. 7) is not "
              "a field here: the groups are the first and second halves of the units in the graph's order",
}
_PAPER001_PA = {"sampler": "pa", "negative_samples": 1000, "sweeps": 5}


def _paper001_table_i() -> list:
    return [
        Preset(
            name="paper001-I-chimera-pa",
            source="paper 001, Table I, row PA, column Chimera (288-unit Chimera C(6) RBM; set-up: App. A)",
            values={**_PAPER001, **_PAPER001_PA, "prior": "chimera", "latent": "6"},
            reported={"ll": "-82.8 ± 0.1"},
            data=DYNAMIC_MNIST,
            unprinted=_PAPER001_UNPRINTED,
        ),
        Preset(
            name="paper001-I-bernoulli-pa",
            source="paper 001, Table I, row PA, column Bernoulli (the 288-unit Bernoulli baseline; set-up: App. A)",
            # the same networks; a Bernoulli prior has no negative phase, so the sampler is never used
            values={**_PAPER001, **_PAPER001_PA, "prior": "bernoulli", "latent": "288"},
            reported={"ll": "-84.2 ± 0.05"},
            data=DYNAMIC_MNIST,
            unprinted={"groups": _PAPER001_UNPRINTED["groups"]},
        ),
    ]


PRESETS = {p.name: p for p in [*_paper000_table_i(), *_paper000_table_ii(), *_paper001_table_i()]}

# --- docs/results.md: the priors side by side at one small budget (rows of no paper; not in PRESETS) ---
COMMON = {
    "batch_size": 200, "lr": 3e-3, "lr_decay": 0.9, "min_lr": 1e-4, "beta_start": 1.0, "beta_end": 10.0,
    "groups": 8, "encoder_hidden": [256, 256], "decoder_hidden": [256], "negative_samples": 1000, "sweeps": 200,
}
RUNS = {
    "bernoulli-32": {"prior": "bernoulli", "latent": "32"},
    "bernoulli-64": {"prior": "bernoulli", "latent": "64"},
    "bernoulli-128": {"prior": "bernoulli", "latent": "128"},
    "rbm-16x16": {"prior": "rbm", "latent": "16x16"},
    "rbm-32x32": {"prior": "rbm", "latent": "32x32"},
    "rbm-64x64": {"prior": "rbm", "latent": "64x64"},
    # the importance-weighted bound L_{5,1} as the training objective instead of the ELBO
    "rbm-64x64-k5": {"prior": "rbm", "latent": "64x64", "kd_schedule": [[5, 1]]},
    # CT-QMC chains cost ~10x a Gibbs sweep at these fields: 1000 chains x 20 sweeps per step
    "qbm-16x16-gamma1": {"prior": "rbm", "latent": "16x16", "gamma": 1.0, "sweeps": 20},
    "qbm-16x16-gamma2": {"prior": "rbm", "latent": "16x16", "gamma": 2.0, "sweeps": 20},
}
COMPARISON = {
    name: Preset(name, "docs/results.md (no paper row)",
                 {**COMMON, **values, "epochs": 10, "final_importance_samples": 1000}, {}, STATIC_MNIST)
    for name, values in RUNS.items()
}

# --- docs/results.md: discrete training against the relaxations of DVAE# (patent [0250]-[0273]) at one
# budget (rows of no paper; not in PRESETS). Equal epochs, networks, sampler and evaluation (the
# discrete model's LL); each objective with the smoothing the patent pairs it with: the spike for the
# discrete bound (paper 000), the posterior's normal smoothing for the Gaussian integral ([0259]),
# the power function for the mean field ([0275]). The β ranges are ours: the patent prints none.
RELAXATION_SMOOTHINGS = {
    "discrete": {"relaxation": "none", "smoothing": "spike-exp", "beta_start": 1.0, "beta_end": 10.0},
    "gaussian-integral": {"relaxation": "gaussian-integral", "smoothing": "normal", "beta_start": 4.0,
                          "beta_end": 40.0},
    "mean-field-power": {"relaxation": "mean-field", "smoothing": "power", "beta_start": 1.5, "beta_end": 10.0},
}
RELAXATION_RUNS = {
    f"rbm-{latent}-{objective}": Preset(
        f"rbm-{latent}-{objective}", "docs/results.md (no paper row)",
        {**COMMON, "prior": "rbm", "latent": latent, **values, "epochs": 10, "final_importance_samples": 1000},
        {}, DYNAMIC_MNIST)
    for latent in ("32x32", "64x64") for objective, values in RELAXATION_SMOOTHINGS.items()
}
ROWS = {**PRESETS, **COMPARISON, **RELAXATION_RUNS}  # what a table's row may name

TABLES = {
    "paper000-I": PaperTable(
        "paper000-I",
        "paper 000, Table I: DVAEs with RBM priors on statically binarised MNIST, ELBO and LL "
        "(importance weighting, K = 30,000 per image); the caption says the validation set, the text the "
        "test set (which the other methods of the table report): we report the test set",
        tuple(p for p in PRESETS if p.startswith("paper000-I-")), "test", ("elbo", "ll"),
    ),
    "paper000-II": PaperTable(
        "paper000-II",
        "paper 000, Table II: QVAEs with QBM priors at Gamma = 0, 1, 2 on statically binarised MNIST, the "
        "true ELBO and the Q-ELBO on the validation set",
        tuple(p for p in PRESETS if p.startswith("paper000-II-")), "valid", ("elbo", "q_elbo"),
    ),
    "paper001-I": PaperTable(
        "paper001-I",
        "paper 001, Table I: convolutional VAEs on dynamically binarised MNIST trained with PA, test-set LL "
        "(K = 1000), mean and standard error over 5 training runs",
        ("paper001-I-chimera-pa", "paper001-I-bernoulli-pa"), "test", ("ll",), seeds=5,
    ),
    "results": PaperTable(
        "results",
        "docs/results.md: Bernoulli, RBM and QBM priors side by side at one small budget on binarised MNIST "
        "(static from an npz with a test key, dynamic from the IDX files), on the test set (LL with K = 1000 for classical priors; for QBMs the true ELBO and the Q-ELBO)",
        tuple(COMPARISON), "test", ("elbo", "q_elbo", "ll"), seeds=3,
    ),
    "relaxations": PaperTable(
        "relaxations",
        "docs/results.md: RBM priors trained with the discrete objective, the Gaussian-integral relaxation and "
        "the mean-field relaxation (power-function smoothing) at one budget on MNIST, on the test set (the "
        "discrete model's ELBO and LL, K = 1000)",
        tuple(RELAXATION_RUNS), "test", ("elbo", "ll"), seeds=3,
    ),
}


def preset(name: str) -> Preset:
    """The preset `name`; ValueError naming it if there is none."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"preset: no preset named {name!r} (qvae-core train --list-presets lists them)")
    return PRESETS[name]


def preset_values(name: str) -> dict:
    """The TrainConfig fields of preset `name` (a fresh copy), with output runs/NAME."""
    return {**copy.deepcopy(preset(name).values), "output": f"runs/{name}"}


def row_values(name: str) -> dict:
    """The TrainConfig fields of a table's row `name` (a paper preset or a docs/results.md run), a fresh copy."""
    return copy.deepcopy(ROWS[name].values)
