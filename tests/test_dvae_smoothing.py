"""Smoothings r(ζ|z): inverse CDFs against scipy's distributions, reparameterisation derivatives
against finite differences, the joint (z, ζ) draw, and the unbiasedness of the positive-phase
stand-in `post` (paper 000 App. D) against quadrature."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

torch = pytest.importorskip("torch")

from conftest import K_SIGMA  # noqa: E402
from qvae_core.dvae.smoothing import SMOOTHINGS  # noqa: E402

OVERLAPPING = ["overlap-exp", "power"]
PROPER = ["spike-exp", *OVERLAPPING]  # smoothings with a q-independent r(ζ|z)


def _component(name, beta, z):
    """(cdf, pdf) of the continuous component r(ζ|z) from scipy.stats, independent of the package."""
    if name == "power":  # Beta(1/β, 1) and Beta(1, 1/β) (patent [0275])
        d = stats.beta(1 / beta, 1) if z == 0 else stats.beta(1, 1 / beta)
        return d.cdf, d.pdf
    decaying = stats.truncexpon(b=beta, scale=1 / beta)  # density ∝ e^{-βζ} on [0, 1]
    if name == "overlap-exp" and z == 0:
        return decaying.cdf, decaying.pdf
    if name in ("overlap-exp", "spike-exp") and z == 1:  # ∝ e^{β(ζ-1)}: the mirror image
        return (lambda t: 1 - decaying.cdf(1 - np.asarray(t))), (lambda t: decaying.pdf(1 - np.asarray(t)))
    raise KeyError((name, z))


def _component_cdf(name, beta, zeta, z):
    if name == "spike-exp" and z == 0:  # δ(ζ)
        return np.ones_like(np.asarray(zeta, float))
    return _component(name, beta, z)[0](zeta)


def _mixture_cdf(name, beta, zeta, q):
    return (1 - q) * _component_cdf(name, beta, zeta, 0) + q * _component_cdf(name, beta, zeta, 1)


def _mixture_pdf(name, beta, zeta, q):
    """Density of the continuous part of q(ζ) (the spike's atom at 0 left out)."""
    spike = name == "spike-exp"
    return (0 if spike else (1 - q) * _component(name, beta, 0)[1](zeta)) + q * _component(name, beta, 1)[1](zeta)


def _grid(seed=0, n=400):
    rng = np.random.default_rng(seed)
    logits = torch.tensor(rng.uniform(-4, 4, n))
    rho = torch.tensor(rng.uniform(0, 1, n))
    return logits, rho


@pytest.mark.parametrize("beta", [1.5, 4.0, 10.0, 30.0, 200.0])  # e^beta overflows float32 beyond 88.7
@pytest.mark.parametrize("name", PROPER)
def test_inverse_cdf_against_scipy(name, beta):
    beta = min(beta, SMOOTHINGS[name].max_beta)
    """F(ζ(ρ)) = ρ, checked as the error it implies in ζ, |F(ζ) - ρ| / q(ζ) (first order): the
    power-function density is unbounded at the ends, where F is flat in ρ but steep in ζ."""
    logits, rho = _grid()
    s = SMOOTHINGS[name](beta)(logits, rho, torch.zeros_like(rho))
    q, zeta, rho = torch.sigmoid(logits).numpy(), s.zeta.numpy(), rho.numpy()
    assert np.all((zeta >= 0) & (zeta <= 1))
    continuous = np.ones(len(rho), bool)
    if name == "spike-exp":  # the spike absorbs ρ <= 1 - q
        continuous = rho > 1 - q
        np.testing.assert_array_equal(zeta[~continuous], 0.0)
    error = _mixture_cdf(name, beta, zeta, q) - rho
    density = _mixture_pdf(name, beta, zeta, q)
    assert np.all(np.abs(error[continuous]) <= 1e-12 * density[continuous] + 1e-14)


@pytest.mark.parametrize("name", [*PROPER, "concrete"])
def test_reparameterisation_derivative_against_finite_differences(name):
    logits, rho = _grid(seed=1)
    smoothing = SMOOTHINGS[name](3.0)
    if name == "spike-exp":  # stay clear of the kink at ρ = 1 - q
        keep = (rho - torch.sigmoid(-logits)).abs() > 1e-3
        logits, rho = logits[keep], rho[keep]
    x = logits.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(smoothing(x, rho, torch.zeros_like(rho)).zeta.sum(), x)
    h = 1e-6
    up = smoothing(logits + h, rho, torch.zeros_like(rho)).zeta
    down = smoothing(logits - h, rho, torch.zeros_like(rho)).zeta
    np.testing.assert_allclose(grad.numpy(), ((up - down) / (2 * h)).numpy(), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", PROPER)
def test_joint_draw_of_z_and_zeta(name):
    """z ~ Bernoulli(q) and ζ | z ~ r(ζ|z): the joint of q(z) r(ζ|z) that the bounds assume."""
    beta, n = 4.0, 100_000
    gen = torch.Generator().manual_seed(2)
    for logit in (-1.0, 0.5, 2.0):
        rho, u = torch.rand((2, n), generator=gen, dtype=torch.float64)
        s = SMOOTHINGS[name](beta)(torch.full((n,), logit, dtype=torch.float64), rho, u)
        z, zeta = s.z.numpy(), s.zeta.numpy()
        q = 1 / (1 + math.exp(-logit))
        assert abs(z.mean() - q) <= K_SIGMA * math.sqrt(q * (1 - q) / n)
        for value in (0, 1):
            if name == "spike-exp" and value == 0:
                np.testing.assert_array_equal(zeta[z == 0], 0.0)
                continue
            p = stats.kstest(zeta[z == value], lambda t: _component_cdf(name, beta, t, value)).pvalue
            assert p > 1e-4, f"{name}: ζ | z = {value} does not follow r(ζ|z) (KS p = {p:.2e})"


@pytest.mark.parametrize("name", PROPER)
def test_posterior_of_z_given_zeta_is_bayes(name):
    """post = P(z = 1 | ζ) = q r(ζ|1) / ((1 - q) r(ζ|0) + q r(ζ|1)) (1[ζ > 0] for the spike)."""
    beta = 3.0
    logits, rho = _grid(seed=3)
    s = SMOOTHINGS[name](beta)(logits, rho, torch.zeros_like(rho))
    zeta, q = s.zeta.numpy(), torch.sigmoid(logits).numpy()
    if name == "spike-exp":
        expected = (zeta > 0).astype(float)
    else:
        r0, r1 = (_component(name, beta, z)[1](zeta) for z in (0, 1))
        expected = q * r1 / ((1 - q) * r0 + q * r1)
    np.testing.assert_allclose(s.post.detach().numpy(), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", PROPER)
def test_sample_given_z_follows_the_components(name):
    beta, n = 2.5, 50_000
    gen = torch.Generator().manual_seed(4)
    for value in (0, 1):
        rho = torch.rand(n, generator=gen, dtype=torch.float64)
        zeta = SMOOTHINGS[name](beta).sample_given(torch.full((n,), float(value), dtype=torch.float64), rho).numpy()
        if name == "spike-exp" and value == 0:
            np.testing.assert_array_equal(zeta, 0.0)
            continue
        assert stats.kstest(zeta, lambda t: _component_cdf(name, beta, t, value)).pvalue > 1e-4


def _pair_expectation(name, beta, a, c, d):
    """E[z_1 z_2] = q_1 ∫ r(ζ|1) σ(c + d ζ) dζ for unit 1 (logit a) in group 1 and unit 2 (logit
    c + d ζ_1) in group 2, by quadrature with scipy's component density."""
    q1 = 1 / (1 + math.exp(-a))

    def sig(t):
        return 1 / (1 + math.exp(-(c + d * t)))

    if name == "power":  # r(ζ|1) = (1 - ζ)^{1/β - 1} / β: the singular factor goes into the weight
        value, _ = integrate.quad(lambda t: sig(t) / beta, 0, 1, weight="alg", wvar=(0, 1 / beta - 1))
    else:
        r1 = ((lambda t: beta * math.exp(beta * t) / math.expm1(beta)) if name == "spike-exp"
              else (lambda t: beta * math.exp(beta * (t - 1)) / -math.expm1(-beta)))
        value, _ = integrate.quad(lambda t: r1(t) * sig(t), 0, 1, epsabs=1e-13, epsrel=1e-13)
    return q1 * value


@pytest.mark.parametrize("name", PROPER)
def test_post_gives_unbiased_pair_moment_and_gradient(name):
    """The positive-phase estimate post_1 q_2 of E[z_1 z_2] across two groups: its mean and the mean
    of its gradient in (a, c, d) match quadrature. For the spike this needs the jump term of App. D."""
    beta, params = 3.0, np.array([0.3, -0.4, 1.5])  # a, c, d
    smoothing = SMOOTHINGS[name](beta)
    gen = torch.Generator().manual_seed(5)
    batches, size = 50, 8000
    values, grads = [], []
    for _ in range(batches):
        theta = torch.tensor(params, requires_grad=True)
        rho, u = torch.rand((2, size), generator=gen, dtype=torch.float64)
        s = smoothing(theta[0].expand(size), rho, u)
        estimate = (s.post * torch.sigmoid(theta[1] + theta[2] * s.zeta)).mean()
        (grad,) = torch.autograd.grad(estimate, theta)
        values.append(estimate.item())
        grads.append(grad.numpy())
    values, grads = np.array(values), np.array(grads)
    exact = _pair_expectation(name, beta, *params)
    h = 1e-5
    exact_grad = np.array([
        (_pair_expectation(name, beta, *(params + h * e)) - _pair_expectation(name, beta, *(params - h * e)))
        for e in np.eye(3)
    ]) / (2 * h)
    se = values.std(ddof=1) / math.sqrt(batches)
    assert abs(values.mean() - exact) <= K_SIGMA * se, (values.mean(), exact, se)
    grad_se = grads.std(axis=0, ddof=1) / math.sqrt(batches)
    assert np.all(np.abs(grads.mean(axis=0) - exact_grad) <= K_SIGMA * grad_se), (grads.mean(0), exact_grad, grad_se)


def test_bad_beta_is_refused():
    with pytest.raises(ValueError, match="beta"):
        SMOOTHINGS["power"](1.0)  # needs beta > 1
    with pytest.raises(ValueError, match="beta"):
        SMOOTHINGS["spike-exp"](float("nan"))
    with pytest.raises(ValueError, match=r"beta: overlap-exp needs a finite beta in \(0.0, 80\]"):
        SMOOTHINGS["overlap-exp"](81.0)
    smoothing = SMOOTHINGS["concrete"](7.0)
    with pytest.raises(ValueError, match="beta"):
        smoothing.beta = -1.0


@pytest.mark.parametrize("large", [False, True], ids=["beta", "large-beta"])
@pytest.mark.parametrize("name", [*PROPER, "concrete"])
def test_float32_extremes_give_finite_values_and_gradients(name, large):
    """Noise at the ends of [0, 1) and saturated logits: ζ in [0, 1], post and gradients finite
    (float32 rounds 1 - 1e-15 to 1, where the power-function densities diverge), also at a beta
    whose e^beta overflows float32."""
    rho = torch.tensor([0.0, 1e-30, 1e-7, 0.5, 1 - 2**-24], dtype=torch.float32).repeat(5)
    logits = torch.tensor([-30.0, -5.0, 0.0, 5.0, 30.0]).repeat_interleave(5).requires_grad_(True)
    beta = min((1.5 if name == "power" else 10.0) * (100.0 if large else 1.0), SMOOTHINGS[name].max_beta)
    s = SMOOTHINGS[name](beta)(logits, rho, torch.full_like(rho, 0.5))
    assert torch.all((s.zeta >= 0) & (s.zeta <= 1)) and torch.all(torch.isfinite(s.post))
    (grad,) = torch.autograd.grad((s.zeta + s.post).sum(), logits)
    assert torch.all(torch.isfinite(grad))


# Further smoothings (patent [0126]-[0131], [0259]-[0260], [0274]): checked against their own
# densities by quadrature and against scipy's logistic and normal distributions.
FURTHER = ["logistic", "normal", "normal-shifted", "power+uniform", "overlap-exp+uniform"]


def _further(name, beta):
    from qvae_core.dvae.smoothing import NormalMixture, make_smoothing

    if name == "normal-shifted":
        return NormalMixture(beta, shift=0.3)
    base, _, uniform = name.partition("+")
    return make_smoothing(base, beta, 0.2 if uniform else 0.0)


def _scipy_component(smoothing, z):
    """The component as a scipy distribution, independent of the package, where scipy has it."""
    if smoothing.name == "logistic":
        return stats.logistic(loc=z, scale=1 / smoothing.beta)
    if smoothing.name == "normal":
        return stats.norm(loc=z + smoothing.shift, scale=smoothing.beta**-0.5)
    return None


def _quad(pdf, a, b, singular_ends):
    """∫_a^b pdf by quadrature; with singular_ends, through ζ = a + (b - a)/2 · t^m and its mirror from
    b, which turn a density ~ ζ^{1/β - 1} at the ends (power function, β < m) into a bounded integrand."""
    if not singular_ends:
        return integrate.quad(pdf, a, b, epsabs=1e-13, epsrel=1e-11, limit=200)[0]
    m, half = 50.0, (b - a) / 2

    def pulled(end, sign):
        def integrand(t):
            jacobian = half * m * t ** (m - 1)  # 0 where t^m underflows: the end point is never evaluated
            return pdf(end + sign * half * t**m) * jacobian if jacobian > 0 else 0.0
        return integrate.quad(integrand, 0, 1, epsabs=1e-13, limit=200)

    left, right = pulled(a, 1), pulled(b, -1)
    return left[0] + right[0]


@pytest.mark.parametrize("beta", [2.0, 8.0, 40.0])
@pytest.mark.parametrize("name", FURTHER)
def test_further_component_densities_integrate_to_one_and_match_their_cdfs(name, beta):
    smoothing = _further(name, beta)
    low, high = smoothing.support()
    bounded = (low, high) == (0.0, 1.0)
    for z in (0, 1):
        def pdf(t):
            return smoothing.component_log_pdf(torch.tensor([t], dtype=torch.float64), z).exp().item()

        def cdf(t):
            return smoothing.component_cdf(torch.tensor(t, dtype=torch.float64), z).item()

        if bounded:  # the last 1e-10 at each end by the CDF: float64 cannot resolve ζ near 1 finer
            cut = 1e-10
            assert cdf(0.0) == 0.0 and cdf(1.0) == 1.0
            mass = cdf(cut) + _quad(pdf, cut, 1 - cut, True) + 1 - cdf(1 - cut)
        else:
            mode = z + smoothing.shift if smoothing.name == "normal" else z
            mass = _quad(pdf, low, mode, False) + _quad(pdf, mode, high, False) + cdf(low) + 1 - cdf(high)
        assert abs(mass - 1) < 1e-8, (z, mass)
        for t in np.linspace(low, high, 7)[1:-1]:
            start = 1e-10 if bounded else low
            assert abs(cdf(t) - cdf(start) - _quad(pdf, start, t, bounded)) < 1e-8, t
        reference = _scipy_component(smoothing, z)
        if reference is not None:
            t = torch.linspace(low, high, 101, dtype=torch.float64)
            np.testing.assert_allclose(smoothing.component_cdf(t, z).numpy(), reference.cdf(t.numpy()), atol=1e-14)
            np.testing.assert_allclose(smoothing.component_log_pdf(t, z).numpy(), reference.logpdf(t.numpy()),
                                       rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("beta", [1.5, 10.0, 60.0])
@pytest.mark.parametrize("name", FURTHER)
def test_further_inverse_cdf_inverts_the_mixture_cdf(name, beta):
    """F(F⁻¹(ρ)) = ρ as the error it implies in ζ, |F(ζ) - ρ| / q(ζ), for ρ off the clamped tails."""
    smoothing = _further(name, beta)
    logits, rho = _grid(seed=6)
    rho = rho.clamp(1e-9, 1 - 1e-9)
    zeta = smoothing(logits, rho, torch.zeros_like(rho)).zeta
    q = torch.sigmoid(logits)
    cdf = (1 - q) * smoothing.component_cdf(zeta, 0) + q * smoothing.component_cdf(zeta, 1)
    density = (1 - q) * smoothing.component_log_pdf(zeta, 0).exp() + q * smoothing.component_log_pdf(zeta, 1).exp()
    assert torch.all((cdf - rho).abs() <= 1e-11 * density + 1e-14)


@pytest.mark.parametrize("name", FURTHER)
def test_further_reparameterisation_derivative_against_finite_differences(name):
    logits, rho = _grid(seed=7)
    smoothing = _further(name, 3.0)
    x = logits.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(smoothing(x, rho, torch.zeros_like(rho)).zeta.sum(), x)
    h = 1e-6
    up = smoothing(logits + h, rho, torch.zeros_like(rho)).zeta
    down = smoothing(logits - h, rho, torch.zeros_like(rho)).zeta
    np.testing.assert_allclose(grad.numpy(), ((up - down) / (2 * h)).numpy(), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", FURTHER)
def test_further_joint_draw_and_sample_given_follow_the_components(name):
    beta, n = 4.0, 50_000
    smoothing = _further(name, beta)
    gen = torch.Generator().manual_seed(8)
    rho, u = torch.rand((2, n), generator=gen, dtype=torch.float64)
    s = smoothing(torch.full((n,), 0.5, dtype=torch.float64), rho, u)
    q = 1 / (1 + math.exp(-0.5))
    assert abs(s.z.mean().item() - q) <= K_SIGMA * math.sqrt(q * (1 - q) / n)
    for value in (0, 1):
        def cdf(t):
            return smoothing.component_cdf(torch.as_tensor(t, dtype=torch.float64), value).numpy()

        assert stats.kstest(s.zeta[s.z == value].numpy(), cdf).pvalue > 1e-4
        given = smoothing.sample_given(torch.full((n,), float(value), dtype=torch.float64), rho)
        assert stats.kstest(given.numpy(), cdf).pvalue > 1e-4


@pytest.mark.parametrize("name", FURTHER)
def test_further_float32_extremes_give_finite_values_and_gradients(name):
    rho = torch.tensor([0.0, 1e-30, 1e-7, 0.5, 1 - 2**-24], dtype=torch.float32).repeat(5)
    logits = torch.tensor([-30.0, -5.0, 0.0, 5.0, 30.0]).repeat_interleave(5).requires_grad_(True)
    smoothing = _further(name, min(50.0, _further(name, 2.0).max_beta))
    s = smoothing(logits, rho, torch.full_like(rho, 0.5))
    low, high = smoothing.support()
    assert torch.all((s.zeta >= low) & (s.zeta <= high)) and torch.all(torch.isfinite(s.post))
    (grad,) = torch.autograd.grad((s.zeta + s.post).sum(), logits)
    assert torch.all(torch.isfinite(grad))


def test_further_smoothings_refuse_bad_parameters():
    from qvae_core.dvae.smoothing import NormalMixture, UniformMixture, make_smoothing

    with pytest.raises(ValueError, match="epsilon"):
        make_smoothing("power", 2.0, 1.0)
    with pytest.raises(ValueError, match="smoothing: a uniform mixture"):
        make_smoothing("spike-exp", 2.0, 0.1)
    with pytest.raises(ValueError, match="smoothing: a uniform mixture"):
        UniformMixture(SMOOTHINGS["logistic"](2.0), 0.1)
    with pytest.raises(ValueError, match="shift"):
        NormalMixture(2.0, shift=math.inf)
    with pytest.raises(ValueError, match="beta"):
        SMOOTHINGS["logistic"](101.0)
    with pytest.raises(ValueError, match="smoothing_shift"):
        make_smoothing("power", 2.0, shift=0.2)
    from qvae_core.dvae.config import TrainConfig

    with pytest.raises(ValueError, match="smoothing_shift"):
        TrainConfig(smoothing="power", smoothing_shift=0.25, beta_start=2.0)
    with pytest.raises(ValueError, match="smoothing_shift"):
        TrainConfig(smoothing="normal", smoothing_shift=math.nan)
    mixed = make_smoothing("power", 2.0, 0.1)
    mixed.beta = 5.0  # the schedule sets the base's beta
    assert mixed.base.beta == 5.0
    with pytest.raises(ValueError, match="beta"):
        mixed.beta = 0.5
