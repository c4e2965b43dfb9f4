"""Continuous relaxations p(ζ) = Σ_z p(z) r(ζ|z) of the Boltzmann-machine prior (DVAE#, patent
[0250]-[0273]), under which the DVAE's objective is that of a continuous VAE:

    log w = log p(x|ζ) + log p(ζ) - log q(ζ|x),   ζ ~ q(ζ|x) = Π_l (1 - q_l) r(ζ_l|0) + q_l r(ζ_l|1),

z marginalised out of both the prior and the hierarchical posterior. Every relaxation has one
contract, `log_prior(prior, smoothing, zeta)` = log p(ζ) + log Z, (B,): log Z is left out as in the
discrete objective, and its gradient comes from the negative phase (Prior.log_partition_surrogate).

    GaussianIntegral   r(ζ|z) = N(ζ | z, (W + βI)⁻¹): p(ζ) in closed form ([0250]-[0256])
    MeanField          any factorial smoothing r(ζ|z) = Π r(ζ_l|z_l): log Σ_z e^{-Ê(z)} by a
                       mean-field fit ([0262]-[0272])

Priors give E(z) = -aᵀz - ½ zᵀWz through Prior.quadratic and their uncoupled blocks through
Prior.blocks; a QBM prior (gamma > 0) has no relaxation.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from .priors import Prior
from .smoothing import Smoothing

__all__ = [
    "Relaxation",
    "GaussianIntegral",
    "MeanField",
    "MeanFieldNotConverged",
    "RELAXATIONS",
    "gaussian_integral_log_density",
    "relaxed_log_posterior",
    "check_relaxable",
    "make_relaxation",
]

MAX_ENUMERATED_UNITS = 20


class MeanFieldNotConverged(RuntimeError):
    """The mean-field iteration m = σ(-∂Ê/∂m) did not reach its tolerance within its budget."""


def check_relaxable(name: str, gamma: float, smoothing: Smoothing) -> None:
    """ValueError naming `relaxation` for a QBM prior (gamma > 0), or naming `smoothing` for a smoothing
    without a density r(ζ|z) (spike-exp, concrete), which relaxation `name` cannot use."""
    if gamma > 0:
        raise ValueError(f"relaxation: {name} needs a classical Boltzmann prior; a QBM prior (gamma {gamma:g}) "
                         f"has none")
    if not hasattr(smoothing, "component_log_pdf"):
        raise ValueError(f"smoothing: the {name} relaxation needs a smoothing with a density r(ζ|z) "
                         f"(overlap-exp, power, logistic, normal), got {smoothing.name}")


def relaxed_log_posterior(smoothing: Smoothing, logits: torch.Tensor, zeta: torch.Tensor) -> torch.Tensor:
    """log q(ζ|x) = Σ_l log[(1 - q_l) r(ζ_l|0) + q_l r(ζ_l|1)], q_l = σ(l_l), (B,): the hierarchical
    posterior with z marginalised out, each logit conditional on the earlier groups' ζ."""
    log_r0, log_r1 = smoothing.component_log_pdf(zeta, 0), smoothing.component_log_pdf(zeta, 1)
    return torch.logaddexp(F.logsigmoid(-logits) + log_r0, F.logsigmoid(logits) + log_r1).sum(1)


def gaussian_integral_log_density(prior: Prior, zeta: torch.Tensor, beta: float) -> torch.Tensor:
    """log p(ζ) + log Z for r(ζ|z) = N(ζ | z, W'⁻¹), W' = W + βI (patent [0252]-[0253]), (B,):

        ½ log|W'/2π| - ½ ζᵀW'ζ + Σ_i softplus(a_i + (W'ζ)_i - β/2),

    exact, differentiable in ζ and the prior's parameters. ValueError naming beta unless W' is
    positive definite, β > -λ_min(W)."""
    a, w = prior.quadratic()
    a, w = a.to(zeta.dtype), w.to(zeta.dtype)
    beta = float(beta)
    lowest = float(torch.linalg.eigvalsh(w.detach())[0]) if w.shape[0] else 0.0
    if not (math.isfinite(beta) and beta > -lowest):
        raise ValueError(f"beta: the Gaussian-integral relaxation needs W + beta I positive definite, beta > "
                         f"{-lowest:.6g} (minus the lowest eigenvalue of W), got {beta}")
    shifted = w + beta * torch.eye(w.shape[0], dtype=w.dtype, device=w.device)
    log_det = 2 * torch.log(torch.diagonal(torch.linalg.cholesky(shifted))).sum()
    field = zeta @ shifted  # W'ζ per row (W' symmetric)
    n = zeta.shape[1]
    return (0.5 * (log_det - n * math.log(2 * math.pi)) - 0.5 * (field * zeta).sum(1)
            + F.softplus(a + field - beta / 2).sum(1))


class Relaxation:
    """Base of the relaxations: `log_prior(prior, smoothing, zeta)` = log p(ζ) + log Z, (B,)."""

    name = ""

    def log_prior(self, prior: Prior, smoothing: Smoothing, zeta: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class GaussianIntegral(Relaxation):
    """The Gaussian-integral relaxation at β = smoothing.beta + max(0, -λ_min(W)): the schedule's β
    counted from the smallest admissible value, so that W + βI stays positive definite as W is
    learnt, and r(ζ|z) is the posterior's normal smoothing N(ζ | z, 1/β) where W = 0 ([0259]).
    The shift follows W without a gradient (β is a constant of each step)."""

    name = "gaussian-integral"

    def beta(self, prior: Prior, smoothing: Smoothing) -> float:
        _, w = prior.quadratic()
        lowest = float(torch.linalg.eigvalsh(w.detach().double())[0]) if w.shape[0] else 0.0
        return smoothing.beta + max(0.0, -lowest)

    def log_prior(self, prior, smoothing, zeta):
        return gaussian_integral_log_density(prior, zeta, self.beta(prior, smoothing))


class MeanField(Relaxation):
    """log Σ_z e^{-Ê(z)} of the augmented energy Ê(z) = E(z) - h(ζ)ᵀz - Σ b(ζ), h = log r(ζ|1) -
    log r(ζ|0), b = log r(ζ|0) (patent [0267]-[0268]), by the mean-field free energy
    -Ê(m) + H(m) at the fixed point m = σ(-∂Ê/∂m) ([0270]); E is multilinear, so E_m[Ê(z)] = Ê(m).

    The fixed point is found by block-coordinate updates over the prior's uncoupled blocks (each
    update maximises the free energy, so it never increases Ê(m) - H(m)), up to `tolerance` in the
    largest change of m, within `max_iterations` sweeps, else MeanFieldNotConverged. m is held fixed
    in the gradient, which is then -∇Ê(m) ([0271]); the value is the importance weight's log p(ζ)
    up to log Z ([0272]).
    """

    name = "mean-field"

    def __init__(self, tolerance: float = 1e-5, max_iterations: int = 200):
        if not (math.isfinite(tolerance) and tolerance > 0):
            raise ValueError(f"tolerance: must be a finite number > 0, got {tolerance}")
        if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations < 1:
            raise ValueError(f"max_iterations: expected an integer >= 1, got {max_iterations!r}")
        self.tolerance, self.max_iterations = float(tolerance), max_iterations

    def __repr__(self) -> str:
        return f"MeanField(tolerance={self.tolerance:g}, max_iterations={self.max_iterations})"

    @staticmethod
    def fields(smoothing: Smoothing, zeta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(h(ζ), b(ζ)) of the augmented energy, each (B, n) (patent [0267])."""
        log_r0 = smoothing.component_log_pdf(zeta, 0)
        return smoothing.component_log_pdf(zeta, 1) - log_r0, log_r0

    def fit(self, prior: Prior, h: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The mean-field solution m (B, n), detached, and the number of sweeps it took."""
        blocks = prior.blocks()
        h = h.detach()
        m = torch.sigmoid(h)
        for sweep in range(1, self.max_iterations + 1):
            change = 0.0
            for block in blocks:
                with torch.enable_grad():
                    probe = m.detach().requires_grad_()
                    (slope,) = torch.autograd.grad(prior.energy(probe).sum(), probe)  # ∂E/∂m
                update = torch.sigmoid(h[:, block] - slope[:, block])
                change = max(change, float((update - m[:, block]).abs().max()) if update.numel() else 0.0)
                m = m.index_copy(1, block, update)
            if change <= self.tolerance:
                return m, sweep
        raise MeanFieldNotConverged(
            f"max_iterations: the mean-field iteration did not reach tolerance {self.tolerance:g} in "
            f"{self.max_iterations} sweeps (last change {change:.3g}); raise max_iterations or the tolerance")

    def log_prior(self, prior, smoothing, zeta):
        h, b = self.fields(smoothing, zeta)
        m, _ = self.fit(prior, h)
        m = m.to(zeta.dtype)
        entropy = -(torch.special.xlogy(m, m) + torch.special.xlogy(1 - m, 1 - m)).sum(1)
        return -prior.energy(m) + (h * m).sum(1) + b.sum(1) + entropy

    @staticmethod
    def exact(prior: Prior, smoothing: Smoothing, zeta: torch.Tensor) -> torch.Tensor:
        """log Σ_z e^{-Ê(z)} by enumeration of the 2^n states (n <= MAX_ENUMERATED_UNITS), (B,): the
        value the mean-field estimate approximates, to report its error on small priors."""
        n = prior.num_units
        if n > MAX_ENUMERATED_UNITS:
            raise ValueError(f"prior: enumeration is limited to {MAX_ENUMERATED_UNITS} units, got {n}")
        states = torch.tensor(list(itertools.product((0.0, 1.0), repeat=n)), dtype=zeta.dtype, device=zeta.device)
        h, b = MeanField.fields(smoothing, zeta)
        return torch.logsumexp(-prior.energy(states)[None, :] + h @ states.T, dim=1) + b.sum(1)


RELAXATIONS = {"none": None, GaussianIntegral.name: GaussianIntegral, MeanField.name: MeanField}


def make_relaxation(name: str, prior: Prior, smoothing: Smoothing, *, tolerance: float = 1e-5,
                    max_iterations: int = 200) -> Relaxation | None:
    """The relaxation `name` (RELAXATIONS) for this prior and smoothing, after check_relaxable; None for
    "none" (the discrete objective). tolerance and max_iterations are the mean-field fit's."""
    if name not in RELAXATIONS:
        raise ValueError(f"relaxation: expected one of {sorted(RELAXATIONS)}, got {name!r}")
    if RELAXATIONS[name] is None:
        return None
    check_relaxable(name, prior.gamma, smoothing)
    return MeanField(tolerance, max_iterations) if name == MeanField.name else GaussianIntegral()
