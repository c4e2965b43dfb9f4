"""Smoothing transformations r(ζ|z) of binary latents and their reparameterisations.

A DVAE hides each binary latent z behind a continuous ζ ~ r(ζ|z) (paper 000 Eq. 17-18), so the
posterior marginal q(ζ|x) = (1 - q) r(ζ|0) + q r(ζ|1), q = σ(l), can be sampled by its inverse
CDF, ζ = F⁻¹(ρ) with ρ ~ U(0, 1) (paper 000 Eq. 21), and differentiated with respect to the
logit l. Every smoothing here has one contract:

    smoothing(logits, rho, u) -> Smoothed(zeta, z, post)       # all (B, n)

    zeta  F⁻¹(ρ): the reparameterised continuous latent the decoder sees;
    z     the discrete latent drawn jointly with it, z ~ q(z | ζ) (u ~ U(0, 1) where that is random);
    post  what the KL needs: a stand-in for z in the prior's energy whose value is P(z = 1 | ζ) and
          whose gradient is the right one for an unbiased positive phase (see `Smoothed`).

`beta` is the inverse temperature of every smoothing: r(ζ|z) approaches δ(ζ - z) as it grows.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "Smoothed",
    "Smoothing",
    "SpikeAndExponential",
    "OverlappingExponentials",
    "PowerFunction",
    "Concrete",
    "LogisticMixture",
    "NormalMixture",
    "UniformMixture",
    "SMOOTHINGS",
    "make_smoothing",
]

_BISECTION_STEPS = 48  # interval [0, 1] halved to 2^-48 ≈ 4e-15, float64 round-off


class Smoothed(NamedTuple):
    """A reparameterised sample of q(z, ζ) = q(z) r(ζ|z) for one group of units, each (B, n).

    post is P(z = 1 | ζ) (exactly z for spike-and-exponential and concrete). Using post for z in a
    multilinear function f(z) (the prior energy E(z), log q(z|x)) gives unbiased gradients of
    E[f(z)]: for overlapping smoothings post is smooth in l and ζ; for the spike, where z jumps
    when ρ crosses 1 - q, post carries the jump term of paper 000 App. D,
    ∂z_l -> (z_l - 1) ∂ log(1 - q_l). For a function G of z that is not multilinear (the
    importance-weighted bound), the same gradient of post multiplies G(z_l = 1) - G(z_l = 0)
    instead of ∂G/∂z_l (DVAE._flip_gains).
    """

    zeta: torch.Tensor
    z: torch.Tensor
    post: torch.Tensor


class Smoothing:
    """Base of the smoothings: holds β and checks it; subclasses define __call__ and sample_given."""

    name = ""
    relaxed = False  # True: ζ only relaxes z during training; the model is evaluated at ζ = z
    min_beta = 0.0
    max_beta = math.inf

    def __init__(self, beta: float):
        self.beta = beta

    @property
    def beta(self) -> float:
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        value = float(value)
        if not (math.isfinite(value) and self.min_beta < value <= self.max_beta):
            bound = f"> {self.min_beta}" if math.isinf(self.max_beta) else f"in ({self.min_beta}, {self.max_beta:g}]"
            raise ValueError(f"beta: {self.name} needs a finite beta {bound}, got {value}")
        self._beta = value

    def __call__(self, logits: torch.Tensor, rho: torch.Tensor, u: torch.Tensor) -> Smoothed:
        raise NotImplementedError

    def sample_given(self, z: torch.Tensor, rho: torch.Tensor) -> torch.Tensor:
        """ζ ~ r(ζ | z) by the inverse CDF of the component (the generative process z -> ζ)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(beta={self.beta:g})"


class SpikeAndExponential(Smoothing):
    """r(ζ|0) = δ(ζ), r(ζ|1) = β e^{βζ} / (e^β - 1) on (0, 1] (paper 000 Eq. 22).

    ζ = log[1 + max(ρ + q - 1, 0)/q (e^β - 1)] / β (Eq. 25) and z = Θ(ρ + q - 1) (Eq. 26).
    """

    name = "spike-exp"

    def __call__(self, logits, rho, u):
        q, one_minus_q = torch.sigmoid(logits), torch.sigmoid(-logits)
        z = (rho > one_minus_q).to(logits.dtype)
        t = F.relu(rho - one_minus_q) / q.clamp_min(torch.finfo(q.dtype).tiny)  # (B, n) in [0, 1]
        zeta = self.sample_given(z, t)  # t is uniform on (0, 1] given z = 1, and 0 where z = 0
        log_one_minus_q = F.logsigmoid(-logits)
        post = z + (z - 1) * (log_one_minus_q - log_one_minus_q.detach())  # value z, App. D gradient
        return Smoothed(zeta, z, post)

    def sample_given(self, z, rho):
        if self.beta <= 20.0:  # exact for small beta, where the form below cancels
            return z * torch.log1p(rho * math.expm1(self.beta)) / self.beta
        # = 1 + log(rho + (1 - rho) e^{-beta}) / beta, where e^beta would overflow float32 (beta > 88)
        inside = (rho + (1 - rho) * math.exp(-self.beta)).clamp_min(torch.finfo(rho.dtype).tiny)
        return z * (1 + torch.log(inside) / self.beta)


class _MixtureInverseCDF(torch.autograd.Function):
    """ζ = F⁻¹(ρ) of (1 - q) r(ζ|0) + q r(ζ|1), differentiated implicitly (patent [0135]):
    ∂ζ/∂q = (R(ζ|0) - R(ζ|1)) / q(ζ), ∂ζ/∂ρ = 1 / q(ζ), R the component CDFs."""

    @staticmethod
    def forward(ctx, q, rho, smoothing):
        zeta = smoothing._clamp(smoothing._inverse_cdf(q, rho))
        ctx.save_for_backward(q, zeta)
        ctx.smoothing = smoothing
        return zeta

    @staticmethod
    def backward(ctx, grad):
        q, zeta = ctx.saved_tensors
        s = ctx.smoothing
        density = (1 - q) * s.component_log_pdf(zeta, 0).exp() + q * s.component_log_pdf(zeta, 1).exp()
        # Where the density underflows, ζ sits on the clamp at the end of an unbounded support
        # (ρ at 0 or 1): held there, it does not move with q.
        inverse = torch.where(density > 0, 1 / density, torch.zeros_like(density))
        grad_q = grad * (s.component_cdf(zeta, 0) - s.component_cdf(zeta, 1)) * inverse
        grad_rho = grad * inverse if ctx.needs_input_grad[1] else None
        return grad_q, grad_rho, None


class _OverlappingSmoothing(Smoothing):
    """Two components with the same support [0, 1] (patent [0118]-[0136]).

    z is not a function of ζ here: it is drawn from P(z = 1 | ζ) = σ(l + log r(ζ|1) - log r(ζ|0)),
    which is also `post`. Subclasses give the component log-densities and CDFs; the mixture's
    inverse CDF is found by bisection unless a subclass has a closed form.
    """

    def component_log_pdf(self, zeta, which: int):
        raise NotImplementedError

    def component_cdf(self, zeta, which: int):
        raise NotImplementedError

    def support(self) -> tuple[float, float]:
        """The interval ζ is drawn from: [0, 1], or for unbounded components one that holds all
        but a negligible mass (the bracket of the bisections)."""
        return 0.0, 1.0

    def _clamp(self, zeta):
        """ζ kept off the ends of [0, 1], where power-function densities diverge."""
        eps = torch.finfo(zeta.dtype).eps
        return zeta.clamp(eps, 1 - eps)

    def _bisect(self, cdf, rho):
        """ζ with cdf(ζ) = ρ by bisection over `support()`, in float64."""
        rho64 = rho.detach().double()
        low, high = self.support()
        lo, hi = torch.full_like(rho64, low), torch.full_like(rho64, high)
        for _ in range(_BISECTION_STEPS + max(0, math.ceil(math.log2(high - low)))):
            mid = 0.5 * (lo + hi)
            below = cdf(mid) < rho64
            lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
        return (0.5 * (lo + hi)).to(rho.dtype)

    def _inverse_cdf(self, q, rho):
        """F⁻¹(ρ) of F(ζ) = (1 - q) R(ζ|0) + q R(ζ|1), by bisection."""
        q64 = q.detach().double()
        return self._bisect(lambda t: (1 - q64) * self.component_cdf(t, 0) + q64 * self.component_cdf(t, 1), rho)

    def sample_given(self, z, rho):
        """ζ = R⁻¹(ρ | z) by bisection (subclasses with a closed form override this)."""
        z64 = z.detach().double()
        zeta = self._bisect(lambda t: (1 - z64) * self.component_cdf(t, 0) + z64 * self.component_cdf(t, 1), rho)
        return self._clamp(zeta)

    def __call__(self, logits, rho, u):
        zeta = _MixtureInverseCDF.apply(torch.sigmoid(logits), rho, self)
        post = torch.sigmoid(logits + self.component_log_pdf(zeta, 1) - self.component_log_pdf(zeta, 0))
        z = (u < post).to(logits.dtype).detach()
        return Smoothed(zeta, z, post)


class OverlappingExponentials(_OverlappingSmoothing):
    """r(ζ|0) ∝ e^{-βζ}, r(ζ|1) ∝ e^{β(ζ-1)} on [0, 1], normaliser (1 - e^{-β})/β (patent [0118]).

    Closed-form inverse CDF (patent [0121], with its φ read as ρ): u = e^{-βζ} solves
    (1 - q) u² + B u - q e^{-β} = 0, B = ρ(1 - e^{-β}) + q e^{-β} - (1 - q); the positive root is
    taken in the form free of cancellation for the sign of B.
    """

    name = "overlap-exp"
    # Beyond, a component's density at the far end of [0, 1], beta e^{-beta}, is no normal float32
    # number, and the implicit gradient (1 / density) of the inverse CDF overflows.
    max_beta = 80.0

    def component_log_pdf(self, zeta, which):
        log_norm = math.log(self.beta) - math.log(-math.expm1(-self.beta))
        return log_norm + (self.beta * (zeta - 1) if which else -self.beta * zeta)

    def component_cdf(self, zeta, which):
        norm = -math.expm1(-self.beta)
        if which:
            return torch.exp(self.beta * (zeta - 1)) * -torch.expm1(-self.beta * zeta) / norm
        return -torch.expm1(-self.beta * zeta) / norm

    def _inverse_cdf(self, q, rho):
        q64, rho64 = q.detach().double(), rho.detach().double()
        e = math.exp(-self.beta)
        b = rho64 * (1 - e) + q64 * e - (1 - q64)
        root = torch.sqrt(b * b + 4 * (1 - q64) * q64 * e)
        big = torch.where(b >= 0, b + root, root - b)  # |b| + root, never a difference of near-equals
        u = torch.where(b >= 0, 2 * q64 * e / big, big / (2 * (1 - q64)).clamp_min(1e-300))
        return (-torch.log(u) / self.beta).clamp(0.0, 1.0).to(q.dtype)

    def sample_given(self, z, rho):
        norm = -math.expm1(-self.beta)
        zeta0 = -torch.log1p(-rho * norm) / self.beta
        zeta1 = 1 + torch.log(math.exp(-self.beta) + rho * norm) / self.beta
        return torch.where(z > 0, zeta1, zeta0)


class PowerFunction(_OverlappingSmoothing):
    """r(ζ|0) = ζ^{1/β - 1}/β, r(ζ|1) = (1 - ζ)^{1/β - 1}/β on [0, 1], β > 1 (patent [0275]):
    the Beta(1/β, 1) and Beta(1, 1/β) densities, heavy-tailed; R(ζ|0) = ζ^{1/β}, R(ζ|1) = 1 - (1-ζ)^{1/β}.
    """

    name = "power"
    min_beta = 1.0

    def component_log_pdf(self, zeta, which):
        return (1 / self.beta - 1) * torch.log(1 - zeta if which else zeta) - math.log(self.beta)

    def component_cdf(self, zeta, which):
        if which:
            return 1 - (1 - zeta) ** (1 / self.beta)
        return zeta ** (1 / self.beta)

    def sample_given(self, z, rho):
        return torch.where(z > 0, 1 - (1 - rho) ** self.beta, rho**self.beta)


class Concrete(Smoothing):
    """Gumbel/concrete relaxation with temperature τ = 1/β (paper 001 Eq. 10):
    z = Θ(σ⁻¹(ρ) + l), ζ = σ((σ⁻¹(ρ) + l)/τ). ζ stands in for z in the energy (paper 001 Eq. 12);
    trained models are evaluated in the limit τ -> 0, where ζ = z.
    """

    name = "concrete"
    relaxed = True

    def __call__(self, logits, rho, u):
        shifted = torch.logit(rho) + logits  # logistic noise plus the logit
        z = (shifted > 0).to(logits.dtype)
        zeta = torch.sigmoid(self.beta * shifted)
        return Smoothed(zeta, z, zeta)

    def sample_given(self, z, rho):
        return z


class _UnboundedSmoothing(_OverlappingSmoothing):
    """Components r(ζ|z) = f((ζ - z)/s)/s on the real line with scale s(β); ζ is kept within `_TAIL`
    scales of the modes (the bracket of the bisections), beyond which the mass is negligible."""

    _TAIL = 0.0

    def scale(self) -> float:
        raise NotImplementedError

    def support(self):
        return -self._TAIL * self.scale(), 1 + self._TAIL * self.scale()

    def _clamp(self, zeta):
        return zeta.clamp(*self.support())


class LogisticMixture(_UnboundedSmoothing):
    """r(ζ|z) = L(ζ; z, s) = e^{-t} / (s (1 + e^{-t})²), t = (ζ - z)/s, s = 1/β (patent [0128]-[0131]).

    Closed-form inverse CDF ([0130]-[0131] with the change of variable m' = √(d₀d₁) m): m' =
    e^{-(ζ - 1/2)/s} solves ρe m'² + (ρ(1 + e²) - (1 - q) - qe²) m' + (ρ - 1)e = 0, e = e^{-β/2}.
    """

    name = "logistic"
    max_beta = 100.0  # beyond, the mixture density between the modes, ~e^{-β/2}β, underflows float32
    _TAIL = 40.0  # mass e^{-40} beyond

    def scale(self):
        return 1 / self.beta

    def component_log_pdf(self, zeta, which):
        t = (zeta - which) * self.beta
        return F.logsigmoid(t) + F.logsigmoid(-t) + math.log(self.beta)

    def component_cdf(self, zeta, which):
        return torch.sigmoid((zeta - which) * self.beta)

    def _inverse_cdf(self, q, rho):
        q64, rho64 = q.detach().double(), rho.detach().double()
        e = math.exp(-self.beta / 2)
        a, b, c = rho64 * e, rho64 * (1 + e * e) - (1 - q64) - q64 * e * e, (rho64 - 1) * e
        root = torch.sqrt(b * b - 4 * a * c)  # a ≥ 0 ≥ c: real, and ≥ |b|
        m = torch.where(b >= 0, -2 * c / (b + root).clamp_min(1e-300), (root - b) / (2 * a).clamp_min(1e-300))
        return (0.5 - torch.log(m.clamp_min(1e-300)) / self.beta).to(q.dtype)

    def sample_given(self, z, rho):
        return self._clamp(z + torch.logit(rho.double()).to(rho.dtype) / self.beta)


class NormalMixture(_UnboundedSmoothing):
    """r(ζ|z) = N(ζ; z + shift, 1/β) (patent [0126]-[0127]; the posterior smoothing of the
    Gaussian-integral relaxation [0259], shifted by a constant Δμ = `shift` as in [0260]).
    The inverse CDF of the mixture has no closed form and is found by bisection ([0132]-[0135])."""

    name = "normal"
    max_beta = 500.0  # beyond, the density between the modes, ~e^{-β/8}√β, underflows float32
    _TAIL = 12.0  # standard deviations: mass 2e-33 beyond

    def __init__(self, beta: float, shift: float = 0.0):
        super().__init__(beta)
        if not math.isfinite(shift):
            raise ValueError(f"shift: must be finite, got {shift}")
        self.shift = float(shift)

    def scale(self):
        return self.beta**-0.5

    def support(self):
        low, high = super().support()
        return low + self.shift, high + self.shift

    def component_log_pdf(self, zeta, which):
        t = (zeta - which - self.shift) * math.sqrt(self.beta)
        return -0.5 * t * t + 0.5 * math.log(self.beta / (2 * math.pi))

    def component_cdf(self, zeta, which):
        return torch.special.ndtr((zeta - which - self.shift) * math.sqrt(self.beta))

    def sample_given(self, z, rho):
        return self._clamp(z + self.shift + torch.special.ndtri(rho.double()).to(rho.dtype) / math.sqrt(self.beta))

    def __repr__(self):
        return f"NormalMixture(beta={self.beta:g}, shift={self.shift:g})"


class UniformMixture(_OverlappingSmoothing):
    """r'(ζ|z) = (1 - ε) r(ζ|z) + ε on [0, 1] for an overlapping base r on [0, 1] (patent [0274]):
    heavier tails, so that the gradients stay finite as β grows. β is the base's."""

    def __init__(self, base: _OverlappingSmoothing, epsilon: float):
        if not isinstance(base, _OverlappingSmoothing) or base.support() != (0.0, 1.0):
            raise ValueError(f"smoothing: a uniform mixture needs an overlapping smoothing on [0, 1], got {base!r}")
        if not 0 < epsilon < 1:
            raise ValueError(f"epsilon (smoothing_uniform): the uniform weight must be in (0, 1), got {epsilon}")
        self.base, self.epsilon = base, float(epsilon)
        self.name, self.max_beta = f"{base.name}+uniform", base.max_beta

    @property
    def beta(self) -> float:
        return self.base.beta

    @beta.setter
    def beta(self, value: float) -> None:
        self.base.beta = value

    def component_log_pdf(self, zeta, which):
        return torch.logaddexp(self.base.component_log_pdf(zeta, which) + math.log1p(-self.epsilon),
                               torch.full_like(zeta, math.log(self.epsilon)))

    def component_cdf(self, zeta, which):
        return (1 - self.epsilon) * self.base.component_cdf(zeta, which) + self.epsilon * zeta

    def __repr__(self):
        return f"UniformMixture({self.base!r}, epsilon={self.epsilon:g})"


SMOOTHINGS = {
    cls.name: cls
    for cls in (SpikeAndExponential, OverlappingExponentials, PowerFunction, Concrete, LogisticMixture, NormalMixture)
}


def make_smoothing(name: str, beta: float, uniform: float = 0.0, shift: float = 0.0) -> Smoothing:
    """SMOOTHINGS[name](beta), mixed with a uniform of weight `uniform` on [0, 1] when it is > 0 ([0274]);
    `shift` moves the modes of the normal smoothing to z + shift ([0260]) and must be 0 for the others."""
    if shift != 0 and name != NormalMixture.name:
        raise ValueError(f"smoothing_shift: only the {NormalMixture.name} smoothing has a shift, not {name}")
    smoothing = NormalMixture(beta, shift) if shift != 0 else SMOOTHINGS[name](beta)
    return UniformMixture(smoothing, uniform) if uniform != 0 else smoothing
