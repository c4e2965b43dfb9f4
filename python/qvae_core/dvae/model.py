"""The DVAE / QVAE: p(x, ζ, z) = p(z) r(ζ|z) p(x|ζ) with a Boltzmann-machine (or QBM) prior p(z),
a hierarchical posterior q(z, ζ|x) = q(z|x) r(ζ|z) and a decoder of Bernoulli pixel logits
(paper 000 Eq. 17-19). The training objective is the ELBO or the importance-weighted bound
L_{K,D} (paper 001 Eq. A1-A2), less log Z, which the trainer adds from the negative phase.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .posterior import HierarchicalPosterior
from .priors import Prior
from .relaxation import Relaxation, check_relaxable, relaxed_log_posterior

__all__ = ["DVAE", "Draws"]


@dataclass
class Draws:
    """K posterior draws for each of B images: log p(x|ζ) and log q(z|x), (K, B); z, (K, B, n);
    the conditional probabilities q of the first draw, (B, n)."""

    log_px: torch.Tensor
    log_q: torch.Tensor
    z: torch.Tensor
    probs: torch.Tensor


class DVAE(nn.Module):
    """Posterior, decoder and prior; `objective` for training, `draws` for evaluation."""

    def __init__(self, posterior: HierarchicalPosterior, decoder: nn.Module, prior: Prior,
                 relaxation: Relaxation | None = None, kl_balance: float = 0.0):
        super().__init__()
        if posterior.num_latent != prior.num_units:
            raise ValueError(f"prior: has {prior.num_units} units, the posterior {posterior.num_latent}")
        if relaxation is not None:
            check_relaxable(relaxation.name, prior.gamma, posterior.smoothing)
        if not (math.isfinite(kl_balance) and kl_balance >= 0) or (kl_balance > 0 and relaxation is not None):
            raise ValueError(f"kl_balance: must be a finite number >= 0, and 0 with a relaxation, got {kl_balance}")
        self.posterior, self.decoder, self.prior = posterior, decoder, prior
        self.relaxation = relaxation  # None: the discrete objective; else that of the relaxed prior p(ζ)
        self.kl_balance = float(kl_balance)  # ε of KL balancing across groups (0: off), see group_kl

    @property
    def smoothing(self):
        return self.posterior.smoothing

    @property
    def num_pixels(self) -> int:
        return self.decoder.num_pixels

    def _log_px(self, zeta, x):  # log p(x|ζ), (B,)
        return -F.binary_cross_entropy_with_logits(self.decoder(zeta), x, reduction="none").sum(1)

    def objective(
        self,
        x: torch.Tensor,
        *,
        kl_weight: float = 1.0,
        num_importance: int = 1,
        num_draws: int = 1,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Mean over the batch of L_{K,D} + kl_weight * log Z (the log Z term comes from the prior's
        log_partition_surrogate), K = num_importance, D = num_draws, kl_weight scaling KL (warm-up).
        With a `relaxation`, the same bound of the relaxed model p(ζ) p(x|ζ) (`_relaxed_bound`).

        K = 1: the ELBO E[log p(x|ζ)] - KL with KL = -H(q) + E_q[E(z)] + log Z, each expectation
        analytic in its last conditional step (PosteriorSample.entropy, Prior.expected_energy); with
        kl_balance > 0 and kl_weight < 1 (warm-up), Σ_g α_g KL_g instead (group_kl, _balance).
        K > 1: log mean_k w_k with log w = log p(x|ζ) + kl_weight (-E(z) - log q(z|x)), the joint
        importance weight of (z, ζ) (r(ζ|z) cancels). Its gradient is exact in expectation: ζ by
        reparameterisation and the discrete z through `_flip_gains` (concrete instead puts its
        relaxed ζ in place of z, paper 001 Eq. 12).
        """
        xs = x.repeat(num_importance * num_draws, 1)  # (K·D·B, pixels), block k + K·d
        s = self.posterior(x, generator, repeats=num_importance * num_draws)
        log_px = self._log_px(s.zeta, xs)
        if self.relaxation is not None:
            return self._relaxed_bound(s, log_px, kl_weight, num_importance, num_draws)
        if num_importance == 1:
            if self.kl_balance > 0 and kl_weight < 1:
                kl = (self.group_kl(s) * self._balance(s)).sum(1)
            else:
                kl = -s.entropy() + self.prior.expected_energy(torch.sigmoid(s.logits), s.post, self.posterior.group)
            return (log_px - kl_weight * kl).mean()
        z = s.post if self.smoothing.relaxed else s.z.detach()
        log_w = (log_px - kl_weight * (self.prior.energy(z) + s.log_q(z))).view(num_draws, num_importance, -1)
        bound = torch.logsumexp(log_w, dim=1) - math.log(num_importance)  # (D, B)
        if self.smoothing.relaxed:
            return bound.mean()
        gains = self._flip_gains(log_w.detach(), z, s.logits.detach(), kl_weight)
        jump = (gains * s.post).sum(1).view_as(log_w).sum(1)  # value 0 after the subtraction below
        return (bound + jump - jump.detach()).mean()

    def group_kl(self, s) -> torch.Tensor:
        """The ELBO's KL less log Z split over the posterior groups, (B, G), summing to
        -H(q) + E_q[E(z)]: group g's entropy and energy terms, a coupling between two groups shared
        half and half: E_g = ½ [E(g alone) + E(all) - E(all but g)], E(S) the expected energy with the
        units outside S set to 0."""
        group, num_groups = self.posterior.group, len(self.posterior.sizes)
        q = torch.sigmoid(s.logits)
        unit_entropy = -(q * F.logsigmoid(s.logits) + (1 - q) * F.logsigmoid(-s.logits))
        entropy = unit_entropy.new_zeros(q.shape[0], num_groups).index_add(1, group, unit_entropy)

        def energy(mask):
            return self.prior.expected_energy(q * mask, s.post * mask, group)

        whole = energy(torch.ones_like(q[0]))
        inside = [(group == g).to(q.dtype) for g in range(num_groups)]
        energies = torch.stack([0.5 * (energy(m) + whole - energy(1 - m)) for m in inside], 1)
        return energies - entropy

    def _balance(self, s) -> torch.Tensor:
        """KL-balancing coefficients α_g = G α̂_g / Σ α̂, α̂_g = E_batch[KL(q(z_g|x) || p(z_g))] + ε
        (patent [0169]-[0171]), detached, (G,). p(z_g), the prior's marginal of group g, is taken in its
        factorial form Π_l p(z_l) from Prior.marginal_logits: exact for a factorial prior; for a
        Boltzmann prior the unit marginals of the previous step's negative phase (the patent's
        "previous parameter update"). All ones until a negative phase has run."""
        num_groups = len(self.posterior.sizes)
        prior_logits = self.prior.marginal_logits()
        if prior_logits is None:
            return s.logits.new_ones(num_groups)
        logits = s.logits.detach()
        q = torch.sigmoid(logits)
        unit_kl = (q * (F.logsigmoid(logits) - F.logsigmoid(prior_logits))
                   + (1 - q) * (F.logsigmoid(-logits) - F.logsigmoid(-prior_logits)))
        per_group = unit_kl.new_zeros(num_groups).index_add(0, self.posterior.group, unit_kl.mean(0))
        raw = per_group + self.kl_balance
        return num_groups * raw / raw.sum()

    def _relaxed_bound(self, s, log_px, kl_weight, num_importance, num_draws):
        """The importance-weighted bound of the relaxed model, mean over draws and images of
        log mean_k w_k, log w = log p(x|ζ) + kl_weight (log p(ζ) + log Z - log q(ζ|x)) (patent [0272]):
        z is marginalised out of prior and posterior, so ζ's reparameterisation gives the whole gradient."""
        log_prior = self.relaxation.log_prior(self.prior, self.smoothing, s.zeta)
        log_q = relaxed_log_posterior(self.smoothing, s.logits, s.zeta)
        log_w = (log_px + kl_weight * (log_prior - log_q)).view(num_draws, num_importance, -1)
        return (torch.logsumexp(log_w, dim=1) - math.log(num_importance)).mean()

    def _flip_gains(self, log_w, z, logits, kl_weight):
        """G(z_l = 1) - G(z_l = 0) for every draw k and unit l, (K·D·B, n), G = log mean_k w_k of the
        draw's (d, b), other units and ζ held: the exact derivative of E[G] with respect to
        P(z_l = 1), to be multiplied by the smoothing's stand-in `post`, whose gradient is that of
        P(z_l = 1 | ζ) (overlapping smoothings) or the spike's boundary term (paper 000 App. D),
        which reads the gain only where z_l = 0, at ζ_l = 0 as on the boundary.

        Flipping z_l changes log w_k by δ = kl_weight (1 - 2 z_l)(-∂E/∂z_l - logit_l) (E and log q
        are linear in each z_l), so G changes by log(1 - w̃_k + w̃_k e^δ), w̃_k = w_k / Σ_j w_j.
        """
        with torch.enable_grad():
            probe = z.detach().requires_grad_()
            (energy_slope,) = torch.autograd.grad(self.prior.energy(probe).sum(), probe)
        up = 1 - 2 * z
        delta = -kl_weight * up * (energy_slope + logits)
        log_share = (log_w - torch.logsumexp(log_w, dim=1, keepdim=True)).reshape(-1, 1)
        log_rest = torch.where(log_share > -math.log(2), torch.log(-torch.expm1(log_share)),
                               torch.log1p(-torch.exp(log_share)))  # log(1 - w̃), no cancellation
        return up * torch.logaddexp(log_rest, log_share + delta)

    @torch.no_grad()
    def draws(self, x: torch.Tensor, num_samples: int, generator: torch.Generator | None = None,
              noise: torch.Tensor | None = None) -> Draws:
        """num_samples joint draws (z, ζ) ~ q(z, ζ|x) per image with their log p(x|ζ) and log q(z|x);
        `noise` ((2, num_samples·B, n) uniforms) replaces the generator's (HierarchicalPosterior.forward)."""
        xs = x.repeat(num_samples, 1)
        s = self.posterior(x, generator, repeats=num_samples, noise=noise)
        k, b = num_samples, x.shape[0]
        return Draws(
            self._log_px(s.zeta, xs).view(k, b),
            s.log_q().view(k, b),
            s.z.view(k, b, -1),
            torch.sigmoid(s.logits[:b]),
        )

    @torch.no_grad()
    def generate(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Pixel probabilities p(x = 1|ζ), ζ ~ r(ζ|z), (B, pixels): the generative process from prior samples z."""
        rho = torch.rand(z.shape, generator=generator, dtype=z.dtype, device=z.device)
        return torch.sigmoid(self.decoder(self.smoothing.sample_given(z, rho)))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Pixel probabilities p(x = 1|ζ) for ζ ~ q(ζ|x), (B, pixels)."""
        return torch.sigmoid(self.decoder(self.posterior(x, generator).zeta))
