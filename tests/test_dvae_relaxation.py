"""Relaxations of the Boltzmann prior (patent [0250]-[0273]) against exact answers on 4 + 4 units:
the Gaussian-integral p(ζ) against the explicit 2^8-component Gaussian mixture and its normalisation
by importance sampling; the mean-field log p(ζ) against enumeration as the smoothing sharpens;
gradients against finite differences; the relaxed importance-weighted bound against the exact
log-likelihood of a two-unit model by quadrature, and its limit β -> ∞, the discrete bound."""

import itertools
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import K_SIGMA  # noqa: E402
from qvae_core.cli import main  # noqa: E402
from qvae_core.dvae.config import TrainConfig  # noqa: E402
from qvae_core.dvae.model import DVAE  # noqa: E402
from qvae_core.dvae.networks import DECODERS, ENCODERS  # noqa: E402
from qvae_core.dvae.posterior import HierarchicalPosterior  # noqa: E402
from qvae_core.dvae.priors import GraphPrior, RBMPrior  # noqa: E402
from qvae_core.dvae.relaxation import (  # noqa: E402
    GaussianIntegral,
    MeanField,
    MeanFieldNotConverged,
    gaussian_integral_log_density,
    make_relaxation,
)
from qvae_core.dvae.smoothing import SMOOTHINGS  # noqa: E402

STATES = torch.tensor(list(itertools.product((0.0, 1.0), repeat=8)), dtype=torch.float64)


def _rbm(seed=0, scale=1.0):
    """RBM 4+4 with couplings and biases of order `scale`, float64."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        prior = RBMPrior(4, 4).double()
        with torch.no_grad():
            for p in prior.parameters():
                p.copy_(scale * torch.randn(p.shape, dtype=torch.float64))
    return prior


def _log_z(prior):
    states = torch.tensor(list(itertools.product((0.0, 1.0), repeat=prior.num_units)), dtype=torch.float64)
    return torch.logsumexp(-prior.energy(states), 0)


def _lowest_eigenvalue(prior):
    return float(torch.linalg.eigvalsh(prior.quadratic()[1].detach())[0])


def _log_components(zeta, precision):
    """log N(ζ | z, W'⁻¹) for every row of ζ and every state z, (B, 256), W' = `precision`."""
    cholesky = torch.linalg.cholesky(precision)
    quadratic = ((zeta @ precision) * zeta).sum(1, keepdim=True) - 2 * zeta @ precision @ STATES.T + (
        (STATES @ precision) * STATES).sum(1)  # (ζ - z)ᵀW'(ζ - z)
    return -0.5 * quadratic + torch.log(torch.diagonal(cholesky)).sum() - 4 * math.log(2 * math.pi)


def _check_gradients(fn, leaves, h=1e-6, rtol=1e-6, atol=1e-8):
    """Autograd gradients of fn().sum() against central differences in every element of `leaves`."""
    grads = torch.autograd.grad(fn().sum(), leaves)
    for leaf, grad in zip(leaves, grads):
        numeric = torch.zeros_like(leaf)
        flat, out = leaf.detach().view(-1), numeric.view(-1)
        for i in range(flat.numel()):
            with torch.no_grad():
                flat[i] += h
                up = fn().sum().item()
                flat[i] -= 2 * h
                down = fn().sum().item()
                flat[i] += h
            out[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(grad.numpy(), numeric.numpy(), rtol=rtol, atol=atol)


def test_prior_quadratic_forms_reproduce_the_energies():
    """E(z) = -aᵀz - ½ zᵀWz for RBM and graph priors, and their blocks are uncoupled and cover all units."""
    graph = GraphPrior(5, np.array([[0, 1], [1, 2], [2, 3], [3, 4], [0, 4], [1, 3]])).double()
    with torch.no_grad():
        for p in graph.parameters():
            p.copy_(torch.randn(p.shape, dtype=torch.float64))
    for prior in (_rbm(), graph):
        z = torch.tensor(list(itertools.product((0.0, 1.0), repeat=prior.num_units)), dtype=torch.float64)
        a, w = prior.quadratic()
        np.testing.assert_allclose((-(z @ a) - 0.5 * ((z @ w) * z).sum(1)).detach(), prior.energy(z).detach(),
                                   atol=1e-12)
        assert torch.equal(w, w.T) and torch.all(torch.diagonal(w) == 0)
        blocks = prior.blocks()
        assert sorted(torch.cat(blocks).tolist()) == list(range(prior.num_units))
        for block in blocks:
            assert torch.all(w[block][:, block] == 0)


def test_gaussian_integral_density_is_the_explicit_mixture():
    """log p(ζ) = log Σ_z p(z) N(ζ | z, (W + βI)⁻¹) over the 256 states (patent [0253], [0255])."""
    prior = _rbm(1, scale=1.5)
    beta = -_lowest_eigenvalue(prior) + 0.7
    zeta = 0.5 + 0.8 * torch.randn(20, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    _, w = prior.quadratic()
    log_pz = -prior.energy(STATES).detach() - _log_z(prior).detach()
    components = _log_components(zeta, w.detach() + beta * torch.eye(8, dtype=torch.float64))
    np.testing.assert_allclose(  # the helper against torch's distribution, for one state
        components[:, 5].numpy(), torch.distributions.MultivariateNormal(
            STATES[5], precision_matrix=w.detach() + beta * torch.eye(8, dtype=torch.float64)).log_prob(zeta).numpy(),
        atol=1e-12)
    explicit = torch.logsumexp(log_pz[None] + components, 1)
    closed = gaussian_integral_log_density(prior, zeta, beta).detach() - _log_z(prior).detach()
    np.testing.assert_allclose(closed.numpy(), explicit.numpy(), rtol=0, atol=1e-10)


def test_gaussian_integral_density_integrates_to_one():
    """∫ p(ζ) dζ = E_g[p(ζ)/g(ζ)] by importance sampling from g = the equal-weight mixture of
    N(ζ | z, (W + βI)⁻¹) over the 256 vertices, under which p/g <= 256 max p(z) is bounded: within
    K_SIGMA standard errors of 1, with a standard error small enough (< 0.01) for the test to fail."""
    prior = _rbm(3)
    beta = -_lowest_eigenvalue(prior) + 1.0
    _, w = prior.quadratic()
    precision = w.detach() + beta * torch.eye(8, dtype=torch.float64)
    cholesky = torch.linalg.cholesky(precision)  # W' = LLᵀ: ζ = z + L⁻ᵀε has covariance W'⁻¹
    gen = torch.Generator().manual_seed(4)
    n = 120_000
    centre = STATES[torch.randint(len(STATES), (n,), generator=gen)]
    noise = torch.randn(n, 8, generator=gen, dtype=torch.float64)
    zeta = centre + torch.linalg.solve_triangular(cholesky.T, noise.T, upper=True).T
    log_normal = _log_components(zeta, precision)
    log_proposal = torch.logsumexp(log_normal, 1) - math.log(len(STATES))
    with torch.no_grad():
        log_ratio = gaussian_integral_log_density(prior, zeta, beta) - _log_z(prior) - log_proposal
    ratio = log_ratio.exp()
    mean, se = ratio.mean().item(), ratio.std().item() / math.sqrt(len(ratio))
    assert se < 0.01 and abs(mean - 1) <= K_SIGMA * se, (mean, se)


def test_gaussian_integral_refuses_a_beta_below_the_lowest_eigenvalue():
    prior = _rbm(5, scale=2.0)
    lowest = _lowest_eigenvalue(prior)
    zeta = torch.zeros(2, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"beta: the Gaussian-integral relaxation needs W \+ beta I positive"):
        gaussian_integral_log_density(prior, zeta, -lowest - 1e-3)
    with pytest.raises(ValueError, match="beta"):
        gaussian_integral_log_density(prior, zeta, math.nan)
    gaussian_integral_log_density(prior, zeta, -lowest + 1e-3)  # just above: accepted
    # In training the schedule's beta counts from the admissible bound, so any beta > 0 is accepted.
    smoothing = SMOOTHINGS["normal"](0.5)
    assert GaussianIntegral().beta(prior, smoothing) == pytest.approx(0.5 - lowest)


def test_gaussian_integral_gradients_against_finite_differences():
    """The gradient in ζ and the prior's parameters (log Z left out: it comes from the negative phase)."""
    prior = _rbm(6)
    beta = -_lowest_eigenvalue(prior) + 1.0
    zeta = (0.5 + 0.6 * torch.randn(3, 8, generator=torch.Generator().manual_seed(7), dtype=torch.float64))
    zeta.requires_grad_()
    leaves = [zeta, prior.weights, prior.visible_bias, prior.hidden_bias]
    _check_gradients(lambda: gaussian_integral_log_density(prior, zeta, beta), leaves)


def _smoothed_states(smoothing, n, seed):
    """ζ ~ r(ζ|z) for z uniform over the 256 states, kept off the ends as the posterior keeps them."""
    gen = torch.Generator().manual_seed(seed)
    z = STATES[torch.randint(len(STATES), (n,), generator=gen)]
    return smoothing._clamp(smoothing.sample_given(z, torch.rand(n, 8, generator=gen, dtype=torch.float64)))


@pytest.mark.parametrize("name, betas", [("power", [1.5, 3.0, 10.0, 30.0, 100.0]),
                                         ("normal", [1.0, 3.0, 10.0, 30.0])])
def test_mean_field_approaches_the_exact_log_density_as_the_smoothing_sharpens(name, betas):
    """The mean-field -Ê(m) + H(m) never exceeds log Σ_z e^{-Ê(z)} (Gibbs' variational bound) and its
    mean error over ζ ~ r(ζ|z) falls with β; the errors are printed (pytest -s) as the report."""
    prior = _rbm(8)
    relaxation = MeanField(tolerance=1e-12, max_iterations=1000)
    errors = []
    for beta in betas:
        smoothing = SMOOTHINGS[name](beta)
        zeta = _smoothed_states(smoothing, 300, seed=9)
        with torch.no_grad():
            approx = relaxation.log_prior(prior, smoothing, zeta)
            exact = MeanField.exact(prior, smoothing, zeta)
        assert torch.all(approx <= exact + 1e-10)
        errors.append((exact - approx).mean().item())
    print(f"\nmean-field error of log p(ζ), {name} smoothing: " +
          ", ".join(f"beta {b:g}: {e:.2e}" for b, e in zip(betas, errors)))
    assert all(later < earlier for earlier, later in zip(errors, errors[1:])), errors
    assert errors[-1] < errors[0] / 100, errors


def test_mean_field_gradients_against_finite_differences():
    """The [0271] gradient -∇Ê(m), m held, equals the total derivative of the converged estimate
    (m is stationary), checked against central differences that refit m at each point."""
    prior = _rbm(10, scale=0.7)
    smoothing = SMOOTHINGS["logistic"](3.0)
    zeta = _smoothed_states(smoothing, 2, seed=11).requires_grad_()
    relaxation = MeanField(tolerance=1e-14, max_iterations=2000)
    leaves = [zeta, prior.weights, prior.visible_bias, prior.hidden_bias]
    _check_gradients(lambda: relaxation.log_prior(prior, smoothing, zeta), leaves, rtol=1e-5, atol=1e-7)


def test_mean_field_that_does_not_converge_is_reported():
    prior = _rbm(12, scale=2.0)
    smoothing = SMOOTHINGS["power"](1.5)
    zeta = _smoothed_states(smoothing, 10, seed=13)
    with pytest.raises(MeanFieldNotConverged, match="max_iterations: the mean-field iteration did not reach"):
        MeanField(tolerance=1e-12, max_iterations=2).log_prior(prior, smoothing, zeta)
    with pytest.raises(ValueError, match="tolerance"):
        MeanField(tolerance=0.0)
    with pytest.raises(ValueError, match="max_iterations"):
        MeanField(max_iterations=0)


def _two_unit_dvae(relaxation, beta=4.0, smoothing="logistic", seed=0):
    """RBM 1+1 prior, one unit per posterior group, a linear decoder to 3 pixels; random weights of
    order 1, float64, eval mode. The logistic smoothing has a closed-form inverse CDF (fast)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        prior = RBMPrior(1, 1)
        smoothing = SMOOTHINGS[smoothing](beta)
        posterior = HierarchicalPosterior(ENCODERS["mlp"](3, (1, 3)), 2, 2, [], smoothing)
        model = DVAE(posterior, DECODERS["mlp"](2, [], 3, (1, 3)), prior,
                     make_relaxation(relaxation, prior, smoothing, tolerance=1e-12, max_iterations=1000)).double()
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, dtype=torch.float64))
    return model.eval()


def _relaxed_log_likelihood(model, x):
    """log p(x) = log ∫ p(ζ) p(x|ζ) dζ of the relaxed model by the trapezoid rule on a fine grid over
    the two ζ (the integrand is smooth and negligible beyond the grid); log p(ζ) exact."""
    low, high = model.smoothing.support()
    grid = torch.linspace(low - 0.5, high + 0.5, 401, dtype=torch.float64)
    zeta = torch.cartesian_prod(grid, grid)
    if model.relaxation.name == "mean-field":
        log_prior = MeanField.exact(model.prior, model.smoothing, zeta)
    else:
        log_prior = model.relaxation.log_prior(model.prior, model.smoothing, zeta)
    log_px = model._log_px(zeta, x.expand(len(zeta), -1))
    step = (grid[1] - grid[0]).item()
    return (torch.logsumexp(log_prior + log_px, 0) + 2 * math.log(step) - _log_z(model.prior)).item()


@pytest.mark.parametrize("relaxation", ["gaussian-integral", "mean-field"])
@torch.no_grad()
def test_relaxed_bound_rises_with_k_and_stays_below_the_exact_log_likelihood(relaxation):
    model = _two_unit_dvae(relaxation)
    x = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)
    exact = _relaxed_log_likelihood(model, x)
    log_z = _log_z(model.prior).item()
    means = []
    for k in (1, 2, 8):
        gen = torch.Generator().manual_seed(k)
        runs = np.array([model.objective(x, num_importance=k, num_draws=100, generator=gen).item()
                         for _ in range(20)]) - log_z
        mean, se = runs.mean(), runs.std(ddof=1) / math.sqrt(len(runs))
        assert mean <= exact + K_SIGMA * se, (k, mean, exact, se)
        if means:
            assert mean - means[-1][0] > K_SIGMA * math.hypot(se, means[-1][1]), (k, mean, means)
        means.append((mean, se))
    assert exact - means[-1][0] < 0.1  # close to log p(x) at K = 8


@pytest.mark.parametrize("relaxation", ["gaussian-integral", "mean-field"])
@torch.no_grad()
def test_relaxed_bound_approaches_the_discrete_bound_as_beta_grows(relaxation):
    """With the same posterior noise, the relaxed L_K minus the discrete L_K (both less log Z)
    shrinks as the smoothing sharpens: p(ζ) -> Σ_z p(z) δ(ζ - z) (patent [0255]). For the
    Gaussian integral this needs the posterior's normal smoothing N(ζ | z, 1/β) ([0259]), whose width
    shrinks as the prior's (W + βI)⁻¹ does; the mean field uses the posterior's smoothing in the prior."""
    x = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)
    gaps = []
    for beta in (10.0, 50.0, 300.0):
        relaxed, discrete = (_two_unit_dvae(name, beta, smoothing="normal") for name in (relaxation, "none"))
        values = [m.objective(x, num_importance=4, num_draws=2000, generator=torch.Generator().manual_seed(3)).item()
                  for m in (relaxed, discrete)]
        gaps.append(abs(values[0] - values[1]))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-3, gaps


def test_training_relaxation_is_refused_where_there_is_none(tmp_path):
    with pytest.raises(ValueError, match="relaxation: mean-field needs a classical Boltzmann prior"):
        TrainConfig(relaxation="mean-field", gamma=0.5, smoothing="power", beta_start=2.0)
    with pytest.raises(ValueError, match="smoothing: the gaussian-integral relaxation needs a smoothing with a density"):
        TrainConfig(relaxation="gaussian-integral")  # spike-exp has none
    with pytest.raises(ValueError, match="relaxation: expected one of"):
        TrainConfig(relaxation="annealed")
    assert main(["train", "--relaxation", "mean-field", "--gamma", "0.5", "--smoothing", "power",
                 "--beta-start", "2", "--output", str(tmp_path / "run")]) == 2
    assert not (tmp_path / "run").exists()


TINY = {"latent": "8x8", "groups": 2, "encoder_hidden": [64], "decoder_hidden": [64], "batch_size": 20,
        "valid_size": 300, "negative_samples": 200, "sweeps": 10, "log_z_population": 500, "lr": 3e-3}


@pytest.mark.parametrize("relaxation, smoothing, betas, shift", [("gaussian-integral", "normal", (4.0, 10.0), 0.0),
                                                                 ("gaussian-integral", "normal", (4.0, 10.0), 0.25),
                                                                 ("mean-field", "power", (1.5, 4.0), 0.0)])
def test_relaxed_training_runs_and_evaluates_the_discrete_model(tmp_path, relaxation, smoothing, betas, shift):
    """Ten steps on the relaxed bound through the trainer (float32, negative phase for log Z): finite
    objective, every prior parameter moved, and the usual evaluation of the discrete model; also with
    the posterior's normal smoothing shifted to N(z + Δμ, 1/β) (--smoothing-shift, patent [0260])."""
    from qvae_core.dvae.train import Trainer

    config = TrainConfig(**TINY, train_size=200, relaxation=relaxation, smoothing=smoothing, beta_start=betas[0],
                         beta_end=betas[1], epochs=1, output=str(tmp_path), smoothing_shift=shift)
    trainer = Trainer(config)
    assert trainer.model.relaxation.name == relaxation
    assert getattr(trainer.model.smoothing, "shift", 0.0) == shift
    start = [p.detach().clone() for p in trainer.model.prior.parameters()]
    history = trainer.fit(progress=False, log=lambda line: None)
    assert trainer.step == 10 and math.isfinite(history[-1]["train_objective"])
    assert all(not torch.equal(a, p) for a, p in zip(start, trainer.model.prior.parameters()))
    assert math.isfinite(history[-1]["val_elbo"])
